"""Print (or check, or write) the table of environment variables in docs/configuration.md.

python -m ops.env_table            # print the table
python -m ops.env_table --write    # replace the table in docs/configuration.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.settings import ENV_DELIMITER, ENV_PREFIX, iter_sections

TABLE_FILE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN = "<!-- env-table:begin -->"
END = "<!-- env-table:end -->"


def table() -> str:
    """One table per section, under a heading that says what the section is for."""
    lines: list[str] = []
    for section, summary, rows in iter_sections():
        prefix = f"{ENV_PREFIX}{section.upper()}{ENV_DELIMITER}"
        lines += ["", f"### `{prefix}*`", "", summary, ""]
        lines += ["| variable | default | meaning |", "|---|---|---|"]
        for name, default, description in rows:
            lines.append(f"| `{name}` | `{default}` | {description.replace('|', '/')} |")
    return "\n".join(lines).strip()


def readme_table(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip()


def main() -> int:
    if "--write" in sys.argv:
        text = TABLE_FILE.read_text()
        start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
        TABLE_FILE.write_text(text[:start] + "\n" + table() + "\n" + text[end:])
        return 0
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
