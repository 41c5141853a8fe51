"""Build hook (the rest of the build is in pyproject.toml): what the commands need goes into the wheel.

- ``schema.sql`` stays at the top of the repository (DESIGN.md fixes the layout), and is copied
  into the wheel as ``daemons/schema.sql``, where ``daemons/db.py`` finds it in an installed
  lastmile; in a checkout or an editable install it reads the top-level file.
- The systemd units go to ``<prefix>/share/lastmile/systemd/`` and the documentation to
  ``<prefix>/share/doc/lastmile/`` (the units' ``Documentation=`` line points there), so an
  installation in /opt/lastmile has them without the source tree.

radiusd's dictionary files are package data (``[tool.setuptools.package-data]``).
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithSchema(build_py):
    """build_py, plus schema.sql copied into the built ``daemons`` package."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):  # editable: db.py reads the checkout's file
            self.copy_file(str(ROOT / "schema.sql"), str(Path(self.build_lib) / "daemons" / "schema.sql"))


setup(
    cmdclass={"build_py": BuildWithSchema},
    data_files=[
        ("share/lastmile/systemd", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "systemd").iterdir())),
        ("share/doc/lastmile", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]),
    ],
)
