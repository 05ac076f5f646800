#!/usr/bin/env python3
"""Mark-1 process agent: capability text.stats.

Input {"text": "..."} -> output {"lines", "words", "chars", "top_words"}.
Sends one progress event per 1000 lines, and one at the start. Rejects input without
a "text" string with a non-retryable error. Standard library only.
"""
import collections
import json
import sys


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def stats(task_id, text):
    lines = text.splitlines()
    send({"type": "progress", "id": task_id, "data": {"lines_total": len(lines), "lines_done": 0}})
    words = collections.Counter()
    for n, line in enumerate(lines, 1):
        words.update(word.lower() for word in line.split())
        if n % 1000 == 0:
            send({"type": "progress", "id": task_id, "data": {"lines_total": len(lines), "lines_done": n}})
    return {
        "lines": len(lines),
        "words": sum(words.values()),
        "chars": len(text),
        "top_words": [[word, count] for word, count in words.most_common(5)],
    }


def main():
    send({"type": "hello", "protocol": 1, "capabilities": ["text.stats"]})
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("type") != "task":
            continue  # cancels arrive only for tasks this agent answers almost at once
        task_id, data = message["id"], message["input"]
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str):
            send({"type": "error", "id": task_id, "message": "input.text must be a string", "retryable": False})
            continue
        send({"type": "result", "id": task_id, "output": stats(task_id, text)})


if __name__ == "__main__":
    main()
