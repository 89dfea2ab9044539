"""Summarises a schemathesis NDJSON report of .ci/contract: requests per phase, and the answers
the stateful phase got per operation (it follows the spec's links into real resources, so an
operation answered only with 404 is one it never reached).

    python3 .ci/contract_summary.py REPORT.ndjson
"""

import collections
import json
import sys


def main(path):
    requests = collections.Counter()
    stateful = collections.defaultdict(collections.Counter)
    with open(path) as report:
        for line in report:
            finished = json.loads(line).get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            for case_id, case in recorder.get("cases", {}).items():
                interaction = recorder.get("interactions", {}).get(case_id)
                if not interaction or not interaction.get("response"):
                    continue
                requests[finished["phase"]] += 1
                if finished["phase"] == "stateful":
                    operation = f'{case["value"]["method"]} {case["value"]["path"]}'
                    stateful[operation][interaction["response"]["status_code"]] += 1
    print("requests per phase: " + ", ".join(f"{p} {n}" for p, n in sorted(requests.items())))
    reached = [op for op, codes in stateful.items() if any(s != 404 for s in codes)]
    print(f"stateful phase: {len(stateful)} operations called, {len(reached)} answered other than 404")
    for operation, codes in sorted(stateful.items()):
        print(f"  {operation}: " + " ".join(f"{s}x{n}" for s, n in sorted(codes.items())))


if __name__ == "__main__":
    main(sys.argv[1])
