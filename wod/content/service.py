"""The content facade the lifecycle uses: catalog, variables, deploy, compile, completion.

One :class:`Content` per backend, built from :class:`~wod.settings.Settings`; it keeps the
compiled templates and file contents between deployments (thread-safe), so the next student's
deployment of the same workshop is mostly writing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wod.content import completion as completion_mod
from wod.content import variables as variables_mod
from wod.content.catalog import Catalog, folder_name
from wod.content.compile import compile_scripts
from wod.content.deploy import Deployer, DeployReport, Ownership, admin_uid
from wod.content.templating import Renderer, Variables
from wod.errors import Permanent
from wod.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Content", "DeployReport"]


class Content:
    """Workshop content for one backend."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = Catalog(settings.notebooks_dir, settings.private_notebooks_dir)
        self.renderer = Renderer()
        self.deployer = Deployer(self.renderer)

    # -- names and variables --------------------------------------------------------
    def resolve(self, workshop: str) -> Path:
        """Folder for a requested name (CHLG-X -> WKSHP-X), public else private."""
        return self.catalog.resolve(workshop)

    def layers(
        self, workshop: str, stdid: int, *, password: str | None = None, extra: dict | None = None
    ) -> list[variables_mod.Layer]:
        return variables_mod.layers(self.settings, workshop, stdid, password=password, extra=extra)

    def variables(
        self, workshop: str, stdid: int, *, password: str | None = None, extra: dict | None = None
    ) -> dict:
        """Effective variables (SPEC 4.1), values as written (templated on use)."""
        values, _ = variables_mod.merge(
            self.layers(workshop, stdid, password=password, extra=extra)
        )
        return values

    def explain(
        self, workshop: str, stdid: int, *, password: str | None = None, extra: dict | None = None
    ) -> list[tuple[str, Any, str]]:
        """(name, value templated, origin) of every variable, secrets masked, sorted."""
        stack = self.layers(workshop, stdid, password=password, extra=extra)
        values, origins = variables_mod.merge(stack)
        vaulted = variables_mod.secret_names(stack)
        lazy = self.renderer.variables(values)
        rows = []
        for name in sorted(values):
            try:
                value = lazy[name]
            except Exception as exc:  # show the problem instead of stopping the listing
                value = f"<error: {exc}>"
            shown = variables_mod.masked(name, value, name in vaulted)
            rows.append((name, shown, origins[name]))
        return rows

    def template_variables(
        self, workshop: str, stdid: int, *, password: str | None = None, extra: dict | None = None
    ) -> Variables:
        return self.renderer.variables(
            self.variables(workshop, stdid, password=password, extra=extra)
        )

    def write_student_variables(self, workshop: str, stdid: int, values: dict) -> Path:
        """Merge ``values`` into ``pass/variables_<CHALLENGE>_<STDID>.yml`` (vaulted if set)."""
        return variables_mod.write_student_file(self.settings, workshop, stdid, values)

    # -- delivery -------------------------------------------------------------------
    def _owner(self, uid: int | None, gid: int | None) -> Ownership | None:
        if uid is None or os.geteuid() != 0:
            return None
        return Ownership(uid, gid if gid is not None else uid, admin_uid(self.settings.admin_user))

    def _workspace(self, folder: str) -> str | None:
        path = self.settings.workspace_template
        if path is None:
            return None
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise Permanent(f"workspace template {path}: {exc.strerror or exc}") from None
        compiled = self.renderer.compile_source(source, str(path))
        return self.renderer.render(compiled, self.renderer.variables({"WORKSHOP": folder})).decode(
            "utf-8"
        )

    def deploy(
        self,
        workshop: str,
        stdid: int,
        home: Path,
        *,
        uid: int | None,
        gid: int | None,
        password: str | None = None,
        dry_run: bool = False,
        extra: dict | None = None,
        on_stage: Callable[[str, Path], None] | None = None,
    ) -> DeployReport:
        """Deliver the workshop into ``home`` (SPEC 4.3), staged then swapped in."""
        src = self.resolve(workshop)
        variables = self.template_variables(workshop, stdid, password=password, extra=extra)
        folder = folder_name(workshop)
        report = self.deployer.deploy(
            src,
            folder,
            Path(home),
            variables,
            owner=self._owner(uid, gid),
            workspace=self._workspace(folder),
            dry_run=dry_run,
            on_stage=on_stage,
        )
        log.info(
            "deployed %s for student %s: %d rendered, %d copied, %.3f s",
            folder,
            stdid,
            report.rendered,
            report.copied,
            report.seconds,
        )
        return report

    def compile(
        self,
        scripts: list[str],
        workshop: str,
        stdid: int,
        home: Path,
        *,
        uid: int | None,
        gid: int | None,
        password: str | None = None,
    ) -> list[Path]:
        """Render and ``shc``-compile each script into ``home`` as ``<name>.x`` (0755)."""
        if not scripts:
            return []
        variables = self.template_variables(workshop, stdid, password=password)
        folders = [self.settings.scripts_dir, self.settings.private_scripts_dir]
        return compile_scripts(
            list(scripts), folders, Path(home), variables, self.renderer, uid=uid, gid=gid
        )

    def completion_details(self, workshop: str, home: Path) -> completion_mod.Completion:
        return completion_mod.measure(Path(home) / folder_name(workshop))

    def completion(self, workshop: str, home: Path) -> int:
        """Executed / all code cells of the student's copy, integer percent."""
        return self.completion_details(workshop, home).percent
