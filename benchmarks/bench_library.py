"""Search at scale: does indexing stay flat per video, and does a search answer within 50 ms at 10,000 videos?

Synthetic transcripts (no media, no model), shaped like faster-whisper's: video lengths lognormal around 6 min
(10,000 videos ~ 1,000 h of audio), segments lognormal around 4.5 s (1-30 s) at 2.6 words a second, words drawn
from a Zipf vocabulary (s = 1.07 over 50,000 words, English function words first, so "the" is in most segments
and the tail is rare). One video in ten is German (its own vocabulary); videos come in five runs.

Indexing goes through the real path: a SessionStore in a real OUT, each video registered, indexed by
`SessionStore.index_transcript` (what the driver calls on delivery, one transaction per video), then recorded done.

    index      ms per video over the first 1,000 videos and over the last 1,000 (at 10,000): flat is the goal
    size       index bytes per hour of audio (the store's pages before and after, checkpointed), and per segment
    search     `library.search` latency, p50 / p95 over a mix (common, mid and rare words, phrases taken from
               the text, 3- and 5-letter prefixes), each plain and with a filter (latest run, majority language,
               minority language, flagged), at 1,000 and at 10,000 videos; each query twice, the second timed
               (a warm page cache, as a person's second search is)

    python -m benchmarks.bench_library [--quick] [--videos 10000] [--checkpoint 1000]
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import common

GOAL_P95_MS = 50.0
HOUR_S = 3600.0
WORDS_PER_S = 2.6
ZIPF_S = 1.07
VOCABULARY = 50_000
RUNS = 5
GERMAN_SHARE = 0.1
FLAGGED_SHARE = 0.01

ENGLISH_HEAD = ("the of and to a in that is it you i for was on this with as be have are not but at we they "
                "so what there from or one all can by about if an my your like just do would their which more "
                "when will out up know think people some time been were them then very going really because "
                "other get how also well right into these things where our over here said could now much only "
                "good even work make first way those many most back need years want should see new see through").split()
GERMAN_HEAD = ("der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an "
               "werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum war "
               "haben nur oder aber vor zur bis mehr durch man").split()


# ---- the corpus --------------------------------------------------------------------------------------------------

def vocabulary(head: list[str], size: int, rng: random.Random, syllables: list[str]) -> list[str]:
    """`head` first (the commonest words), then made-up words of 1-4 syllables, all distinct."""
    words, seen = list(dict.fromkeys(head)), set(head)
    while len(words) < size:
        word = "".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3, 3, 4))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_weights(size: int, s: float = ZIPF_S) -> list[float]:
    weights = [1.0 / (rank + 1) ** s for rank in range(size)]
    total = sum(weights)
    return [w / total for w in weights]


@dataclass
class Corpus:
    english: list[str]
    german: list[str]
    cumulative: list[float]

    @classmethod
    def make(cls, seed: int = 7, size: int = VOCABULARY) -> "Corpus":
        rng = random.Random(seed)
        en = vocabulary(ENGLISH_HEAD, size, rng, ["ka", "lo", "ter", "min", "sa", "ro", "ve", "ni", "dus", "pel",
                                                  "gra", "ton", "ex", "ly", "cor", "mi", "bal", "sten", "qua", "ri"])
        de = vocabulary(GERMAN_HEAD, size, rng, ["schen", "ge", "lich", "ber", "ung", "ke", "sch", "ein", "rau",
                                                 "heit", "stadt", "wo", "zei", "fel", "ach", "ner", "bund"])
        weights = zipf_weights(size)
        cumulative, total = [], 0.0
        for w in weights:
            total += w
            cumulative.append(total)
        return cls(en, de, cumulative)

    def segments(self, rng: random.Random, duration_s: float, german: bool) -> list[dict]:
        words = self.german if german else self.english
        out, at = [], 0.0
        while at < duration_s:
            length = min(30.0, max(1.0, rng.lognormvariate(1.4, 0.5)))  # median ~4 s, mean ~4.5 s
            n = max(1, round(length * WORDS_PER_S * rng.uniform(0.7, 1.3)))
            text = " ".join(rng.choices(words, cum_weights=self.cumulative, k=n))
            out.append({"start": round(at, 2), "end": round(at + length, 2), "text": text[:1].upper() + text[1:] + "."})
            at += length + rng.uniform(0.0, 0.6)
        return out


def video_length_s(rng: random.Random) -> float:
    """Lognormal around 6 minutes (1 min to 3 h): the mean of many is ~6 min."""
    return min(3 * HOUR_S, max(60.0, rng.lognormvariate(5.65, 0.75)))


# ---- indexing -------------------------------------------------------------------------------------------------------

@dataclass
class Built:
    out: Path
    runs: list[str]
    videos: int = 0
    audio_s: float = 0.0
    segments: int = 0
    text_bytes: int = 0
    index_s: list[float] | None = None
    sample_texts: list[str] | None = None


def store_pages(db: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()


def build(out: Path, corpus: Corpus, count: int, rng: random.Random, built: Built | None = None,
          total: int | None = None) -> Built:
    """Add `count` videos to OUT's store through the real delivery path; `total` (the final size) sets the runs."""
    from bulk_transcribe.config import RunConfig
    from bulk_transcribe.models import EventKind, ProgressEvent, SourceKind, Transcript, VideoItem
    from bulk_transcribe.outputs.writers import transcript_from_dict
    from bulk_transcribe import layout
    from bulk_transcribe.session_manager import SessionStore

    total = total or count
    built = built or Built(out, [], index_s=[], sample_texts=[])
    per_run = max(1, total // RUNS)
    with SessionStore(layout.state_db(out)) as store:
        for i in range(built.videos, built.videos + count):
            if i % per_run == 0 and len(built.runs) < RUNS or not built.runs:
                built.runs.append(store.begin_run(RunConfig(inputs=("bench",), out_dir=out), "sequential"))
            run_id = built.runs[-1]
            german = rng.random() < GERMAN_SHARE
            length = video_length_s(rng)
            segments = corpus.segments(rng, length, german)
            item = VideoItem(f"https://video.example/watch?v={i:07d}", SourceKind.URL, "bench",
                             title=f"Synthetic talk {i}", duration_s=length)
            store.register_videos(run_id, [item])
            transcript: Transcript = transcript_from_dict({"video_id": item.video_id, "segments": segments,
                                                           "language": "de" if german else "en", "duration": length})
            t = time.perf_counter()
            store.index_transcript(run_id, transcript)
            built.index_s.append(time.perf_counter() - t)
            store.apply_event(ProgressEvent(item.video_id, EventKind.DONE, outputs={}))
            built.videos += 1
            built.audio_s += length
            built.segments += len(segments)
            built.text_bytes += sum(len(s["text"].encode()) for s in segments)
            if not german and rng.random() < 0.05:
                built.sample_texts.append(rng.choice(segments)["text"])
    return built


def flag(out: Path, share: float, rng: random.Random) -> int:
    """A `flags` table naming `share` of the videos (the shape library/lookup.py reads as "flagged")."""
    import sqlite3

    from bulk_transcribe import layout

    conn = sqlite3.connect(layout.state_db(out))
    try:
        ids = [r[0] for r in conn.execute("SELECT video_id FROM videos")]
        chosen = rng.sample(ids, max(1, int(len(ids) * share)))
        conn.execute("CREATE TABLE IF NOT EXISTS flags (video_id TEXT NOT NULL)")
        conn.execute("DELETE FROM flags")
        conn.executemany("INSERT INTO flags VALUES (?)", [(v,) for v in chosen])
        conn.commit()
        return len(chosen)
    finally:
        conn.close()


# ---- searching ------------------------------------------------------------------------------------------------------

def query_mix(corpus: Corpus, samples: list[str], rng: random.Random, runs: list[str]) -> list[tuple[str, str, dict]]:
    """(kind, query, filters): each query plain and with each filter."""
    vocabulary = corpus.english
    phrases = []
    for text in samples[:40]:
        words = text.rstrip(".").lower().split()
        if len(words) >= 3:
            start = rng.randrange(len(words) - 2)
            phrases.append('"' + " ".join(words[start:start + rng.choice((2, 3))]) + '"')
    def en(rank: int) -> str:  # the word of that Zipf rank (the last one in a smaller vocabulary)
        return vocabulary[min(rank, len(vocabulary) - 1)]

    base = [("common", w) for w in ("the", "and", en(20))] + \
           [("mid", w) for w in (en(300), en(800), en(2000))] + \
           [("rare", w) for w in (en(20_000), en(35_000), en(49_000))] + \
           [("phrase", p) for p in phrases[:3]] + [("phrase", '"of the"')] + \
           [("prefix", w[:3] + "*") for w in (en(150), en(900))] + [("prefix", en(5000)[:5] + "*")] + \
           [("two words", f"{en(120)} {en(700)}")]
    filters = [{}, {"run": runs[-1]}, {"language": "en"}, {"language": "de"}, {"flagged": True}]
    return [(kind, q, f) for kind, q in base for f in filters]


def latencies(out: Path, mix: list[tuple[str, str, dict]]) -> list[dict]:
    from bulk_transcribe import library

    rows = []
    for kind, q, filters in mix:
        library.search([out], q, limit=20, **filters)  # the first read of its pages
        cpu, t = time.thread_time(), time.perf_counter()
        hits = library.search([out], q, limit=20, **filters)
        ms, cpu_ms = (time.perf_counter() - t) * 1e3, (time.thread_time() - cpu) * 1e3
        rows.append({"kind": kind, "query": q, "filter": ",".join(f"{k}={v}" for k, v in filters.items()) or "-",
                     "ms": ms, "cpu_ms": cpu_ms, "hits": len(hits)})
    return rows


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summary(rows: list[dict]) -> dict[str, float]:
    """Wall time (what a person waits) and this thread's CPU time (the same, less waiting for a core: on a shared
    machine the two differ, and the CPU figure is the one that repeats)."""
    ms, cpu = [r["ms"] for r in rows], [r["cpu_ms"] for r in rows]
    return {"p50_ms": percentile(ms, 0.5), "p95_ms": percentile(ms, 0.95), "max_ms": max(ms),
            "cpu_p50_ms": percentile(cpu, 0.5), "cpu_p95_ms": percentile(cpu, 0.95)}


def by_kind(rows: list[dict]) -> dict[str, dict[str, float]]:
    kinds: dict[str, list[float]] = {}
    for r in rows:
        kinds.setdefault(r["kind"] + (" +filter" if r["filter"] != "-" else ""), []).append(r["ms"])
    return {k: {"p50_ms": percentile(v, 0.5), "p95_ms": percentile(v, 0.95)} for k, v in kinds.items()}


def main(argv: list[str] | None = None) -> dict:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=None, help="videos in the end (default 10,000; quick 2,000)")
    p.add_argument("--checkpoint", type=int, default=None, help="first measuring point (default 1,000; quick 200)")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="build the output folder in DIR (new) and keep it, to search it by hand afterwards")
    args = p.parse_args(argv)
    total = args.videos or (2_000 if args.quick else 10_000)
    first = args.checkpoint or (200 if args.quick else 1_000)
    rng = random.Random(11)
    corpus = Corpus.make()
    print(f"library: {total:,} synthetic transcripts, measured at {first:,} and {total:,}", flush=True)
    from bulk_transcribe import layout

    with tempfile.TemporaryDirectory(prefix="bench-library-") as tmp:
        out = args.keep or Path(tmp) / "out"
        out.mkdir(parents=True)
        # The store's own pages before any index row: what the index adds is measured against this.
        from bulk_transcribe.session_manager import SessionStore
        SessionStore(layout.state_db(out)).close()
        t0 = time.perf_counter()
        built = build(out, corpus, first, rng, total=total)
        points: dict[int, dict] = {}

        def measure(n: int) -> None:
            flag(out, FLAGGED_SHARE, random.Random(n))
            mix = query_mix(corpus, built.sample_texts, random.Random(3), built.runs)
            rows = latencies(out, mix)
            window = built.index_s[-first:]
            points[n] = {"videos": n, "audio_h": built.audio_s / HOUR_S, "segments": built.segments,
                         "index_ms_per_video": statistics.mean(window) * 1e3,
                         **summary(rows), "by_kind": by_kind(rows), "queries": rows}
            s = points[n]
            print(f"  {n:,} videos ({s['audio_h']:.0f} h, {s['segments']:,} segments): index "
                  f"{s['index_ms_per_video']:.2f} ms/video (last {first:,}); search p50 {s['p50_ms']:.1f} ms, "
                  f"p95 {s['p95_ms']:.1f} ms over {len(rows)} queries", flush=True)

        measure(first)
        build(out, corpus, total - first, rng, built, total=total)
        build_s = time.perf_counter() - t0
        measure(total)
        size = store_pages(layout.state_db(out))
        index_bytes = index_pages(layout.state_db(out))
    hours = built.audio_s / HOUR_S
    big, small = points[total], points[first]
    print(common.table(
        ["figure", f"{first:,} videos", f"{total:,} videos"],
        [["audio (h)", small["audio_h"], big["audio_h"]],
         ["index ms / video (last 1k)", small["index_ms_per_video"], big["index_ms_per_video"]],
         ["search p50 ms", small["p50_ms"], big["p50_ms"]],
         ["search p95 ms", small["p95_ms"], big["p95_ms"]],
         ["search max ms", small["max_ms"], big["max_ms"]],
         ["search CPU p50 ms", small["cpu_p50_ms"], big["cpu_p50_ms"]],
         ["search CPU p95 ms", small["cpu_p95_ms"], big["cpu_p95_ms"]]]))
    kinds = list(big["by_kind"])
    print(common.table(["query kind (p50 / p95 ms)", f"{first:,}", f"{total:,}"],
                       [[k, f"{small['by_kind'][k]['p50_ms']:.1f} / {small['by_kind'][k]['p95_ms']:.1f}",
                         f"{big['by_kind'][k]['p50_ms']:.1f} / {big['by_kind'][k]['p95_ms']:.1f}"] for k in kinds]))
    slowest = sorted(big["queries"], key=lambda r: -r["ms"])[:5]
    print(f"slowest at {total:,}: " + "; ".join(f"{r['query']} [{r['filter']}] {r['ms']:.0f} ms" for r in slowest))
    print(f"index: {index_bytes / 1e6:.0f} MB for {hours:.0f} h = {index_bytes / hours / 1e3:.0f} kB per hour of "
          f"audio, {index_bytes / built.segments:.0f} B per segment; transcript text itself "
          f"{built.text_bytes / hours / 1e3:.0f} kB per hour; store file {size / 1e6:.0f} MB; built in {build_s:.0f} s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"goal: search p95 <= {GOAL_P95_MS:.0f} ms at {total:,} videos; index time per video flat (ratio ~1). "
          f"Load average at the end: {load:.1f} on {common.machine()['cores']} cores")
    ratios = {
        "index_flatness": common.ratio(big["index_ms_per_video"], small["index_ms_per_video"]),
        f"index_ms_per_video_{total}": big["index_ms_per_video"],
        f"search_p50_ms_{total}": big["p50_ms"],
        f"search_p95_ms_{total}": big["p95_ms"],
        f"search_p95_ms_{first}": small["p95_ms"],
        f"search_cpu_p95_ms_{total}": big["cpu_p95_ms"],
        "p95_over_goal": big["p95_ms"] / GOAL_P95_MS,
        "index_kb_per_hour": index_bytes / hours / 1e3,
        "index_over_text": common.ratio(index_bytes, built.text_bytes),
    }
    result = {"load_average": load, "videos": total, "checkpoint": first, "audio_h": hours, "segments": built.segments,
              "index_bytes": index_bytes, "text_bytes": built.text_bytes, "store_bytes": size,
              "points": {str(k): {kk: vv for kk, vv in v.items()} for k, v in points.items()}, "ratios": ratios}
    return common.finish("library", args, result)


def index_pages(db: Path) -> int:
    """Bytes the index's tables, their FTS5 shadow tables and their indexes take in the store (SQLite's dbstat)."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    finally:
        conn.close()
    return sum(size for name, size in rows if name.startswith(("library_", "sqlite_autoindex_library")))


if __name__ == "__main__":
    main(sys.argv[1:])
