"""Renders concur-lab's report.html in headless Chromium and checks what a reader would see.

Fails (exit 1) when Chromium logs a console error, when an experiment of report.json has no card
in the page, or when a card's chart is missing or empty (no bar, span or line drawn). Saves a
screenshot (report.png) beside the report for a human look. Used by the CTest test
lab_report_renders, on the output of lab_all_quick.

    python3 render_report.py --chromium /usr/bin/chromium --dir build/.../test-report
"""
import argparse
import html.parser
import json
import os
import subprocess
import sys
import tempfile


class Cards(html.parser.HTMLParser):
    """Collects, per card (section.card id=NAME), how many marks its charts draw."""

    def __init__(self):
        super().__init__()
        self.cards = {}  # name -> {"charts": n, "marks": n}
        self.card = None
        self.depth = 0
        self.in_chart = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "card" in (a.get("class") or "").split():
            self.card = a.get("id", "?")
            self.cards[self.card] = {"charts": 0, "marks": 0}
            self.depth = 0
        if self.card is None:
            return
        if tag == "section":
            self.depth += 1
        if tag == "figure" and "chart" in (a.get("class") or "").split():
            self.cards[self.card]["charts"] += 1
        if tag in ("rect", "line"):
            width = a.get("width")
            drawn = tag == "line" or (width is not None and float(width) > 0)
            if drawn:
                self.cards[self.card]["marks"] += 1

    def handle_endtag(self, tag):
        if self.card is not None and tag == "section":
            self.depth -= 1
            if self.depth == 0:
                self.card = None


def chromium(binary, args, profile):
    base = [binary, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--user-data-dir=" + profile, "--enable-logging=stderr"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=180)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chromium", required=True)
    ap.add_argument("--dir", required=True, help="the folder with report.html and report.json")
    args = ap.parse_args()
    page = "file://" + os.path.abspath(os.path.join(args.dir, "report.html"))
    with open(os.path.join(args.dir, "report.json")) as f:
        expected = [e["name"] for e in json.load(f)["experiments"]]
    failures = []
    with tempfile.TemporaryDirectory() as profile:
        dom = chromium(args.chromium, ["--dump-dom", page], profile)
        shot = chromium(args.chromium, ["--window-size=1100,9000",
                                        "--screenshot=" + os.path.abspath(
                                            os.path.join(args.dir, "report.png")), page], profile)
    for run in (dom, shot):
        for line in run.stderr.splitlines():
            if "CONSOLE" in line and ("rror" in line or "Uncaught" in line):
                failures.append("console error: " + line.strip())
    if dom.returncode != 0 or not dom.stdout.strip():
        failures.append("chromium could not render the page: " + dom.stderr[-500:])
    cards = Cards()
    cards.feed(dom.stdout)
    for name in expected:
        card = cards.cards.get(name)
        if card is None:
            failures.append(f"{name}: no card in the page")
        elif card["charts"] == 0:
            failures.append(f"{name}: the card has no chart")
        elif card["marks"] == 0:
            failures.append(f"{name}: the card's chart draws nothing")
    print(f"render_report: {len(cards.cards)} cards rendered, {len(expected)} expected; "
          f"screenshot {os.path.join(args.dir, 'report.png')}")
    for f in failures:
        print("render_report: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
