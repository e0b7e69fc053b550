"""Text to unit vectors with the checked model: the tokenizer and an onnxruntime session, on the CPU.

The word-embedding table (47 MB of float32) is not in the graph: each text's rows are read from its file
(`os.pread`) and handed to the session as `words`. No process holds the table; the kernel's page cache
keeps the parts read often, and gives them back under memory pressure (docs/performance.md, memory).
"""

from __future__ import annotations

import os
import weakref

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from blog.index.semantic.weights import DIMENSIONS, ModelFiles

ROW = DIMENSIONS * 4  # bytes of one word's row in the table


class WordTable:
    """The rows of the word-embedding table, read from its file when a text needs them; thread-safe."""

    def __init__(self, path: os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.words = os.fstat(self.fd).st_size // ROW
        weakref.finalize(self, os.close, self.fd)

    def rows(self, ids: list[int]) -> np.ndarray:
        """Return the tokens' rows as one batch of one text (1 x tokens x 384 float32)."""
        out = bytearray(len(ids) * ROW)
        for place, word in enumerate(ids):
            if not 0 <= word < self.words:
                raise ValueError(f"word piece {word} is outside the model's table of {self.words}")
            out[place * ROW:(place + 1) * ROW] = os.pread(self.fd, ROW, word * ROW)
        return np.frombuffer(out, "<f4").reshape(1, len(ids), DIMENSIONS)


class Encoder:
    """Embeds texts; safe to call from several threads (onnxruntime sessions are)."""

    def __init__(self, files: ModelFiles, threads: int = 1, arena: bool = True) -> None:
        """`arena=False` frees each run's buffers instead of keeping onnxruntime's arena at its high-water mark:
        the served process's question session holds no more than its weights between questions."""
        self.files = files
        self.tokenizer = Tokenizer.from_file(str(files.tokenizer))
        self.tokenizer.enable_truncation(files.max_tokens)  # longer blocks are cut
        self.tokenizer.no_padding()  # the file pads every text to 128 pieces; batches here pad to their longest
        # The served model's rows come from their own file; a graph that keeps its table looks ids up.
        self.words = WordTable(files.words) if files.words is not None else None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = arena
        options.log_severity_level = 3  # errors only: its warnings are about the graph, not the reader
        self.session = ort.InferenceSession(str(files.graph), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return one unit vector (float32, the model's dimensions) per text, in order.

        One text a call: the int8 graph scales its activations over the whole input, so in a batch a text's
        vector moved with its batch-mates (by about 0.01). Alone, a block's vector depends on its text only,
        as the question's does; and on these cores it is no slower (docs/search.md).
        """
        out = np.empty((len(texts), self.files.dimensions), np.float32)
        for row, encoded in enumerate(self.tokenizer.encode_batch(texts)):
            mask = np.ones((1, len(encoded.ids)), np.int64)
            words = ({"words": self.words.rows(encoded.ids)} if self.words is not None
                     else {"input_ids": np.array([encoded.ids], np.int64)})
            out[row] = self.session.run(["embedding"], {**words, "attention_mask": mask})[0][0]
        return out

    def tokens(self, texts: list[str]) -> int:
        """Return how many word pieces the texts make (for progress and cost figures)."""
        return sum(len(e.ids) for e in self.tokenizer.encode_batch(texts))
