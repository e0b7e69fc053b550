"""Text to unit vectors with the checked model: the tokenizer and an onnxruntime session, on the CPU."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from blog.index.semantic.weights import ModelFiles


class Encoder:
    """Embeds texts; safe to call from several threads (onnxruntime sessions are)."""

    def __init__(self, files: ModelFiles, threads: int = 1, arena: bool = True) -> None:
        """`arena=False` frees each run's buffers instead of keeping onnxruntime's arena at its high-water mark:
        the served process's question session holds no more than its weights between questions."""
        self.files = files
        self.tokenizer = Tokenizer.from_file(str(files.tokenizer))
        self.tokenizer.enable_truncation(files.max_tokens)  # longer blocks are cut
        self.tokenizer.no_padding()  # the file pads every text to 128 pieces; batches here pad to their longest
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
            ids = np.array([encoded.ids], np.int64)
            out[row] = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        return out

    def tokens(self, texts: list[str]) -> int:
        """Return how many word pieces the texts make (for progress and cost figures)."""
        return sum(len(e.ids) for e in self.tokenizer.encode_batch(texts))
