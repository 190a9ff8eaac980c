"""OpenAPI schemas of the API's bodies and answers.

Input models are deliberately lenient (the original's clients send ``execAt``
and ``execType`` as strings or numbers); :mod:`traitor.domain.job` does the
real validation so every route applies the same rules. Output models document
exactly what :mod:`traitor.api.serialize` produces.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE_SCRIPT = 'console.log("hello world")'


class JobInput(BaseModel):
    """Fields a client may set on a job; every one is optional in a partial update."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"name": "Every Monday 8:00am", "description": "say good morning", "cron": "0 0 8 ? * MON",
                 "script": EXAMPLE_SCRIPT},
                {"name": "say happy new year", "execType": "1", "execAt": "1893456000", "script": EXAMPLE_SCRIPT},
            ]
        },
    )

    name: str | None = Field(None, description="Display name (≤ 200 bytes).", max_length=200)
    description: str | None = Field(None, description="Free text (≤ 4000 bytes).")
    execType: int | str | None = Field(None, description="0 or \"0\" (timing), 1 or \"1\" (delay).")
    cron: str | None = Field(None, description="Cron expression (5, 6 or 7 fields, or @every 30s); timing jobs.")
    execAt: int | float | str | None = Field(
        None, description="When a delay job fires: Unix seconds, or milliseconds when above 10^11; number or string."
    )
    script: str | None = Field(None, description="The JavaScript program.")
    timezone: str | None = Field(None, description="IANA zone the cron expression is read in.")
    timeout: float | str | None = Field(None, description="Wall-clock seconds per run.")
    memoryLimit: int | str | None = Field(None, description="MiB of JS heap per run.")
    overlap: str | None = Field(None, description="allow | skip | queue: a fire while the previous run goes on.")
    misfire: str | None = Field(None, description="skip | once | all: fires missed while no node could run them.")
    misfireGrace: float | str | None = Field(None, description="Seconds of lateness that still count as on time.")
    retries: int | str | None = Field(None, description="Extra attempts after a failed run (exponential backoff).")
    maxConcurrent: int | str | None = Field(
        None, description="Runs of this job at once (default 1 for overlap skip/queue, else unlimited)."
    )


class NewJobInput(JobInput):
    enabled: bool | None = Field(None, description="Schedule the job at once (default false).")


class ScriptInput(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"script": EXAMPLE_SCRIPT}]})
    script: str = Field(..., description="The JavaScript program.")


class JobOut(BaseModel):
    jobId: str
    name: str
    description: str
    execType: int = Field(description="0 timing, 1 delay")
    cron: str
    execAt: int | None = Field(description="Unix seconds")
    state: int = Field(description="0 stopped, 1 runnable")
    lastExecTime: str | None
    nextExecTime: str | None
    timezone: str | None
    timeout: float | None
    memoryLimit: int | None
    overlap: str
    misfire: str
    misfireGrace: float | None
    retries: int
    maxConcurrent: int | None
    createdAt: str
    updatedAt: str
    version: int
    script: str | None = Field(None, description="Present where the route says so.")


class RunOut(BaseModel):
    runId: str
    jobId: str
    scheduledAt: str
    startedAt: str | None
    finishedAt: str | None
    status: Literal["running", "success", "error", "timeout", "memory", "output-truncated", "crashed", "skipped",
                    "missed"]
    trigger: Literal["schedule", "manual", "retry", "misfire"]
    attempt: int
    node: str
    error: str | None
    durationMs: int | None
    latenessMs: int | None
    output: str | None = None


class IdOut(BaseModel):
    id: str
    data: str


class JobData(BaseModel):
    data: JobOut


class JobPage(BaseModel):
    data: list[JobOut]
    total: int
    offset: int
    limit: int


class RunData(BaseModel):
    data: RunOut


class RunPage(BaseModel):
    data: list[RunOut]
    total: int
    offset: int
    limit: int


class ScriptOut(BaseModel):
    jobId: str
    script: str


class ScriptData(BaseModel):
    data: ScriptOut


class DeletedOut(BaseModel):
    jobId: str
    deleted: bool


class DeletedData(BaseModel):
    data: DeletedOut


class ErrorOut(BaseModel):
    error: str = Field(examples=["cron: minute field '61': 61 is out of range 0-59"])


class CronPreviewInput(BaseModel):
    cron: str = Field(..., examples=["*/5 * * * *"])
    timezone: str | None = None
    count: int = Field(5, ge=1, le=50)


class CronPreviewOut(BaseModel):
    cron: str
    timezone: str
    description: str
    next: list[str]


class CronPreviewData(BaseModel):
    data: CronPreviewOut


class LibraryImportOut(BaseModel):
    """Per ``NAME@VERSION``: added, already there, or refused (with the reason)."""

    created: list[str]
    unchanged: list[str]
    errors: list[dict[str, Any]]


class ImportOut(BaseModel):
    dryRun: bool
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    errors: list[dict[str, Any]]
    libraries: LibraryImportOut


class ImportData(BaseModel):
    data: ImportOut


class ExportedLibraryVersion(BaseModel):
    version: int
    source: str


class ExportedLibrary(BaseModel):
    name: str
    versions: list[ExportedLibraryVersion] = Field(description="every version, oldest first")


class ExportOut(BaseModel):
    version: int
    exportedAt: str
    jobs: list[JobOut]
    libraries: list[ExportedLibrary] = Field(default_factory=list, description="script libraries, every version")


class StatsOut(BaseModel):
    node: str
    mode: str
    jobs: dict[str, int]
    armed: int
    running: int
    queued: int
    workers: int
    paused: bool
    nodes: list[str]
    runsLastHour: dict[str, int]


class StatsData(BaseModel):
    data: StatsOut


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the ``{"error": ...}`` answers a route can give."""
    text = {400: "Bad input", 401: "Missing or wrong token", 404: "No such job or run", 409: "Conflict",
            413: "Body too large"}
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}
