#!/usr/bin/env python
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    from django.core.management import execute_from_command_line

    from demo.dbcheck import database_problem, needs_database

    if needs_database(sys.argv) and (problem := database_problem()):
        sys.exit(f"Error: {problem}")
    execute_from_command_line(sys.argv)
