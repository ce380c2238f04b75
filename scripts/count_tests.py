"""Sums doctest's per-program results from meson's testlog.json into one line:
"tests: N passed, N failed". Exits 1 when anything failed or nothing ran."""
import json
import re
import sys

SUMMARY = re.compile(r"\[doctest\] test cases:\s*(\d+) \|\s*(\d+) passed \|\s*(\d+) failed")

passed = failed = 0
with open(sys.argv[1]) as log:
    for line in log:
        test = json.loads(line)
        match = None
        for match in SUMMARY.finditer(test.get("stdout", "") or ""):
            pass
        if match and test.get("result") == "OK":
            passed += int(match.group(2))
            failed += int(match.group(3))
        elif match:
            passed += int(match.group(2))
            failed += max(int(match.group(3)), 1)
        else:
            failed += 1
            print(f"no doctest summary from {test.get('name')}: {test.get('result')}")
print(f"tests: {passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
