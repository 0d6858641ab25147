"""Build hooks pyproject.toml cannot express declaratively:

- the root-level migrations_sql/ ships inside the wheel as pgqueue/migrations_sql (setuptools
  cannot map a folder outside the package as package data);
- the package index page shows README.md with its links made absolute (pointing into the
  repository named in [project.urls]), since relative links break there. The README in the
  repository keeps relative links, which work in a checkout and on the forge.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
_LINK = re.compile(r"(!?)\[([^\]]*)\]\((?!https?://|#|mailto:)([^)\s]+)\)")


class BuildPyWithMigrations(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install reads the files from the checkout
        target = Path(self.build_lib) / "pgqueue" / "migrations_sql"
        target.mkdir(parents=True, exist_ok=True)
        for sql_file in sorted(ROOT.joinpath("migrations_sql").glob("*.sql")):
            shutil.copy2(sql_file, target / sql_file.name)


def absolute_links(markdown: str, repository: str, branch: str = "main") -> str:
    """Relative links to the repository's blob view, relative images to their raw file."""
    raw = repository.replace("https://github.com/", "https://raw.githubusercontent.com/")

    def absolute(match: re.Match[str]) -> str:
        bang, text, target = match.groups()
        base = f"{raw}/{branch}" if bang else f"{repository}/blob/{branch}"
        return f"{bang}[{text}]({base}/{target.removeprefix('./')})"

    return _LINK.sub(absolute, markdown)


def long_description() -> str:
    project = tomllib.loads(ROOT.joinpath("pyproject.toml").read_text(encoding="utf-8"))
    repository = project["project"]["urls"]["Repository"]
    return absolute_links(ROOT.joinpath("README.md").read_text(encoding="utf-8"), repository)


setup(cmdclass={"build_py": BuildPyWithMigrations}, long_description=long_description(),
      long_description_content_type="text/markdown")
