"""Ships the root-level migrations_sql/ inside the wheel as pgqueue/migrations_sql.

pyproject.toml holds all metadata; this hook only copies the SQL files into the build tree,
because setuptools cannot map a folder outside the package as package data declaratively.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithMigrations(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads the files from the checkout
        target = Path(self.build_lib) / "pgqueue" / "migrations_sql"
        target.mkdir(parents=True, exist_ok=True)
        for sql_file in sorted(Path(__file__).parent.joinpath("migrations_sql").glob("*.sql")):
            shutil.copy2(sql_file, target / sql_file.name)


setup(cmdclass={"build_py": BuildPyWithMigrations})
