"""``python -m advml.report --write-schema``: regenerate ``advml/report/schema.json`` from
the report models (:mod:`advml.report.model`); ``--check`` says whether it is stale."""

from __future__ import annotations

import argparse
import sys

from advml.report.model import SCHEMA_FILE, schema_text


def main(argv: list[str] | None = None) -> int:
    """``python -m advml.report --write-schema``: regenerate ``schema.json``;
    ``--check`` exits 1 when the committed file differs from the models."""
    parser = argparse.ArgumentParser(
        prog="python -m advml.report", description="report.json's schema, from the models"
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write-schema", action="store_true", help=f"write {SCHEMA_FILE}")
    group.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = schema_text()
    if args.write_schema:
        SCHEMA_FILE.write_text(text)
        print(f"wrote {SCHEMA_FILE}")
        return 0
    if SCHEMA_FILE.read_text() != text:
        print(
            f"{SCHEMA_FILE} differs from the report models; regenerate it with "
            "`python -m advml.report --write-schema`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
