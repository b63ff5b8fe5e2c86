"""Build ``train_requests.jsonl`` from τ²-bench's retail train tasks (run by hand, once).

``python -m evals.tau2.build TASKS.jsonl [OUT.jsonl]`` reads the benchmark's task file (the
train split only) and writes, for each task, three customer messages: the task's
``known_info`` followed by its ``reason_for_call``, turned into the first person the way a
customer writes one message, with the instructions meant for the user simulator (what not to
reveal, what to mention first) left out. Each record keeps the task's gold actions and its
expected database changes. Nothing at run time reads the task file: the evaluation reads
the shipped output.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

_SECRET_NOTE = re.compile(r"\s*\([^()]*\b(?:reveal|share|mention)\b[^()]*\)", re.IGNORECASE)
_SECRET_SENTENCE = re.compile(
    r"[^.]*\((?:do not|don't) share[^.]*\.|(?:^|(?<=\.\s))(?:Make sure you mention|You do not "
    r"want to reveal|You are not familiar|Do NOT mention|Be insistent)[^.]*\.",
    re.IGNORECASE,
)
_CONDITION = re.compile(
    r"\b(?:if|unless|otherwise|in case|when the agent|once the agent|but when|then you "
    r"regret|change your mind|when asked)\b",
    re.IGNORECASE,
)
_AGENT = "\x00"
_OBJECT = re.compile(
    r"\b(to|for|with|tell|ask|asks|help|give|let|call|charge|send|refund|show|told|from)\s+you\b",
    re.IGNORECASE,
)
_WORDS: list[tuple[str, str]] = [
    (r"\bYou name is\b", "My name is"),
    (r"\b[Yy]ou're\b", "I'm"),
    (r"\b[Yy]ou are\b", "I am"),
    (r"\b[Yy]ou were\b", "I was"),
    (r"\b[Yy]ou'd\b", "I'd"),
    (r"\b[Yy]ou've\b", "I've"),
    (r"\b[Yy]ou'll\b", "I'll"),
    (r"\bYour\b", "My"),
    (r"\byour\b", "my"),
    (r"\byours\b", "mine"),
    (r"\byourself\b", "myself"),
    (r"\bYou\b", "I"),
    (r"\byou\b", "I"),
]
_AGREEMENT: list[tuple[str, str]] = [
    (r"\byou (ask|tell|propose|say|offer|confirm|find|need|want|allow|suggest)s\b", r"you \1"),
    (r"\byou has\b", "you have"),
    (r"\byou doesn't\b", "you don't"),
    (r"\byou is\b", "you are"),
    (r"\bI is\b", "I am"),
    (r"\bI are\b", "I am"),
]


def first_person(text: str) -> str:
    """Turn a τ² scenario ("You are ...", "the agent ...") into the customer's own words."""
    text = re.sub(r"\b[Tt]he (?:customer service )?agent\b", _AGENT, text)
    text = _OBJECT.sub(lambda m: f"{m.group(1)} me", text)
    for pattern, repl in _WORDS:
        text = re.sub(pattern, repl, text)
    text = text.replace(_AGENT, "you")
    for pattern, repl in _AGREEMENT:
        text = re.sub(pattern, repl, text)
    text = re.sub(r"(^|[.!?]\s+)you\b", lambda m: f"{m.group(1)}You", text)
    return " ".join(text.split())


def customer_text(scenario: dict[str, Any]) -> str:
    """The known info and the reason for the call, simulator instructions left out."""
    known, reason = (
        _SECRET_NOTE.sub("", _SECRET_SENTENCE.sub("", scenario.get(key) or ""))
        for key in ("known_info", "reason_for_call")
    )
    return first_person(f"{known.strip()} {reason.strip()}")


def variants(text: str) -> list[str]:
    """Three phrasings of one message: plain, polite and casual."""
    polite = re.sub(r"\bI want to\b", "I would like to", text)
    polite = re.sub(r"\bI am\b", "I'm", polite, count=1)
    casual = re.sub(r"\bI want to\b", "I'd like to", text)
    casual = re.sub(r"\bI also want to\b", "I'd also like to", casual)
    return [text, f"Hello, {polite[0].lower()}{polite[1:]}", f"Hi there. {casual} Thanks!"]


def build(tasks: Path) -> list[dict[str, Any]]:
    """The dataset records, one per phrasing."""
    out: list[dict[str, Any]] = []
    for line in tasks.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        task = json.loads(line)
        scenario = task["user_scenario"]
        text = customer_text(scenario)
        conditional = bool(_CONDITION.search(scenario.get("reason_for_call") or ""))
        for n, request in enumerate(variants(text), 1):
            out.append(
                {
                    "id": f"{task['task_id']}-{n}",
                    "task_id": task["task_id"],
                    "request": request,
                    "conditional": conditional,
                    "gold_actions": task["gold_actions"],
                    "db_changes": task.get("db_changes"),
                }
            )
    return out


def main(argv: list[str]) -> int:
    """Write the dataset; the first argument is the task file, the second the output."""
    if not argv or len(argv) > 2:
        sys.stderr.write("usage: python -m evals.tau2.build TASKS.jsonl [OUT.jsonl]\n")
        return 2
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("train_requests.jsonl")
    records = build(Path(argv[0]))
    with out.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    sys.stdout.write(f"{len(records)} requests written to {out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
