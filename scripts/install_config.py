#!/usr/bin/env python3
"""The rules file as installed: rules/rules.yaml with the access log in /var/log/hallpass.

rules/rules.yaml logs next to itself (access.log) so that scripts/run works from a checkout;
an installed /etc/hallpass is read-only to the service, which logs to its LogsDirectory.
"""
import sys

SOURCE_LINE = "  access_log: {path: access.log, format: squid}"
INSTALLED_LINE = "  access_log: {path: /var/log/hallpass/access.log, format: squid}"

src, dst = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
if text.count(SOURCE_LINE) != 1:
    sys.exit(f"{src}: expected exactly one line '{SOURCE_LINE}'")
text = text.replace(SOURCE_LINE, INSTALLED_LINE)
text = text.replace(
    "  # Installed: access_log: {path: /var/log/hallpass/access.log, format: squid}\n", "")
open(dst, "w", encoding="utf-8").write(text)
