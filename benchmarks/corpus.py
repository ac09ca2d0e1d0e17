"""The benchmark corpus: English speech made with espeak-ng, clips of mixed length, cached on disk.

Generated, not downloaded, so every machine benchmarks the same words. The text is written for this file
(plain public-domain-style prose); clips draw seeded random sentences from it until they reach their target
length, so each clip says something different. Files are cached under benchmarks/.corpus/<name>/ with a
manifest of measured durations; the cache is rebuilt when the spec below changes.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
CACHE = ROOT / ".corpus"

# tests/media.py owns the espeak-ng + PyAV helpers; the benchmarks reuse them rather than copy them.
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

WORDS_PER_S = 2.6
"""espeak-ng at ~160 words per minute, with its pauses: used only to size the text for a target length."""

FULL_TARGETS_S = (180, 160, 140, 120, 100, 90, 75, 60, 50, 40, 30, 25, 20, 15, 12, 10, 8, 6, 5, 5)
"""About 19 minutes: a long tail of short clips behind a few long ones, like a real channel."""

QUICK_TARGETS_S = (75, 50, 35, 25, 15, 10, 6, 5)
"""About 3.7 minutes, for `make bench-quick`."""

SHORT_TARGETS_S = (2, 3, 4, 5)
"""One sentence each (about 5-7 s): the streaming benchmark links hundreds of pages to these, so that resolving,
not transcribing, is what it measures."""

SENTENCES = (
    "The river rose slowly through the night and by morning the lower fields were under water.",
    "A good loaf of bread needs flour, water, salt, yeast and more patience than most people expect.",
    "The lighthouse keeper climbed the spiral stairs twice each evening to trim the wick and clean the glass.",
    "Our committee met on Tuesday to discuss the budget for the new community library.",
    "Bees visit thousands of flowers to gather enough nectar for a single spoonful of honey.",
    "The old railway bridge was built of stone and iron more than a hundred years ago.",
    "Please remember to close the windows before you leave, because rain is expected this afternoon.",
    "She measured the length of the shadow at noon and used it to estimate the height of the tower.",
    "In the winter the lake freezes solid and children skate on it from dawn until dusk.",
    "The recipe calls for two cups of rice, one onion, a little garlic and a handful of fresh herbs.",
    "A compass needle points north because it lines up with the magnetic field of the earth.",
    "The market opens at six, when farmers arrive with vegetables, cheese, eggs and flowers.",
    "He wrote a long letter to his brother describing the mountains, the weather and the people he met.",
    "Every spring the swallows return to the same barn and rebuild their nests under the roof.",
    "The orchestra tuned their instruments while the audience found their seats in the great hall.",
    "To plant a tree, dig a hole twice as wide as the roots and water it well for the first summer.",
    "The ship carried wool, timber and salted fish across the ocean to distant harbours.",
    "Our teacher explained that sound travels faster through water than it does through air.",
    "The museum keeps a collection of clocks, some of them older than the city itself.",
    "When the power failed, the whole street lit candles and sat outside talking until midnight.",
    "The mountain path is steep and narrow, so walkers should carry water and wear sturdy boots.",
    "A small cafe on the corner serves soup and bread to anyone who comes in from the cold.",
    "The scientist recorded the temperature every hour and plotted the numbers on a large chart.",
    "Farmers in the valley grow apples, pears and plums, and press cider every autumn.",
    "The bicycle was invented long before the motor car and is still the cheapest way to travel.",
    "After the storm the beach was covered with seaweed, driftwood and the shells of tiny crabs.",
    "The town council voted to repair the fountain in the square before the summer festival.",
    "Owls hunt at night, using their sharp hearing to find mice moving under the snow.",
    "The printing press made books cheaper, and soon many more people learned to read.",
    "Our neighbour keeps chickens in the back garden and sells the eggs at the front gate.",
    "The map showed three roads to the coast, but only one of them was open in winter.",
    "A kettle whistles when the steam inside pushes through the narrow opening in the spout.",
    "The choir practised the same song every evening until every voice was perfectly in time.",
    "Glass is made by melting sand with soda and lime at a very high temperature.",
    "The children built a raft from barrels and planks and floated it down the quiet stream.",
    "Weather forecasts use measurements from balloons, satellites and thousands of ground stations.",
    "The baker rises at four in the morning so that the shelves are full when the doors open.",
    "Windmills once ground grain across the whole country and now many of them make electricity.",
    "The letter arrived three weeks late, its envelope stained by rain and stamped in five places.",
    "A careful gardener saves seeds from the strongest plants to sow again the following year.",
)


@dataclass(frozen=True)
class Clip:
    path: Path
    duration_s: float
    words: int


def _spec(targets: tuple[int, ...], seed: int) -> str:
    """What the cache depends on: change any of it and the clips are rebuilt."""
    blob = json.dumps({"targets": targets, "seed": seed, "sentences": SENTENCES, "wps": WORDS_PER_S, "v": 1})
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def clip_text(target_s: float, rng: random.Random) -> str:
    """Sentences drawn at random (no immediate repeats) until the text should last about `target_s`."""
    words, parts, last = 0, [], None
    while words < target_s * WORDS_PER_S:
        sentence = rng.choice([s for s in SENTENCES if s is not last])
        parts.append(sentence)
        words += len(sentence.split())
        last = sentence
    return " ".join(parts)


def scripts(targets: tuple[int, ...], seed: int = 5) -> list[tuple[str, int]]:
    """(text, espeak speed) of each clip, in order: what `build` speaks, and the reference for word error rates."""
    rng = random.Random(seed)
    out = []
    for target in targets:
        text = clip_text(target, rng)
        out.append((text, rng.choice((150, 160, 170))))
    return out


def build(name: str, targets: tuple[int, ...], *, seed: int = 5, cache: Path = CACHE) -> list[Clip]:
    """The clips of corpus `name`, generating them (espeak-ng -> mp3 with PyAV) when the cache is stale."""
    folder = cache / name
    manifest = folder / "manifest.json"
    spec = _spec(targets, seed)
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        clips = [Clip(folder / c["file"], c["duration_s"], c["words"]) for c in data["clips"]]
        if data.get("spec") == spec and all(c.path.is_file() for c in clips):
            return clips
    import media  # tests/media.py: espeak-ng and PyAV

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.mp3"):
        old.unlink()
    clips = []
    for i, (target, (text, speed)) in enumerate(zip(targets, scripts(targets, seed))):
        path = media.speech(text, folder / f"clip{i:02d}_{target:03d}s.mp3", speed=speed)
        samples, rate = media.read_pcm(path)
        clips.append(Clip(path, round(len(samples) / rate, 2), len(text.split())))
    manifest.write_text(json.dumps({
        "spec": spec,
        "clips": [{"file": c.path.name, "duration_s": c.duration_s, "words": c.words} for c in clips],
    }, indent=1))
    return clips


def corpus(quick: bool) -> list[Clip]:
    return build("quick", QUICK_TARGETS_S) if quick else build("full", FULL_TARGETS_S)


def short_clips() -> list[Clip]:
    """A handful of one-sentence clips (cached like the corpus) for benchmarks that need many cheap videos."""
    return build("short", SHORT_TARGETS_S, seed=7)


def references(quick: bool) -> list[str]:
    """What each clip of `corpus(quick)` says, in the same order."""
    return [text for text, _ in scripts(QUICK_TARGETS_S if quick else FULL_TARGETS_S)]


def total_audio_s(clips: list[Clip]) -> float:
    return sum(c.duration_s for c in clips)


if __name__ == "__main__":
    for quick in (True, False):
        clips = corpus(quick)
        print(f"{'quick' if quick else 'full'}: {len(clips)} clips, {total_audio_s(clips) / 60:.1f} min, "
              f"{min(c.duration_s for c in clips):.0f}-{max(c.duration_s for c in clips):.0f} s")
