"""Script libraries over ``/api/v1/libraries`` (see ``traitor.scheduler.libraries``).

A library is a named JavaScript module with a version history; jobs load it with
``require('lib/NAME')`` (latest version) or ``require('lib/NAME@3')`` (pinned), or
with ES module ``import … from 'lib/NAME'``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from traitor.api.app import context
from traitor.api.schemas import ErrorOut
from traitor.domain.library import LibraryInfo, LibraryVersion, VersionInfo
from traitor.domain.timeutil import to_rfc3339
from traitor.scheduler.libraries import LibraryInUse, LibraryService, PreparedLibrary, syntax_json

router = APIRouter(prefix="/api/v1/libraries", tags=["libraries"])

NAME = Path(..., description="The library's name", min_length=1, max_length=64)
EXAMPLE = "exports.greet = (who) => `hello ${who}`;\n"


# --------------------------------------------------------------------------- schemas


class LibraryInput(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"name": "greetings", "source": EXAMPLE}]}
    )
    name: str = Field(..., description="1 to 64 characters: a-z, 0-9, '_' and '-', starting with a letter.")
    source: str = Field(..., description="The module's JavaScript (CommonJS `exports`/`module.exports`, or ES `export`).")


class LibrarySourceInput(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"source": EXAMPLE}]})
    source: str = Field(..., description="The new source: stored as the next version.")


class SyntaxErrorOut(BaseModel):
    message: str
    line: int
    column: int


class LibraryOut(BaseModel):
    name: str
    version: int = Field(description="This version's number (1, 2, 3…)")
    latest: bool = Field(description="Whether this is the latest version")
    source: str
    size: int = Field(description="Bytes of the source (UTF-8)")
    createdAt: str = Field(description="When this version was stored")
    syntaxError: SyntaxErrorOut | None = Field(
        None, description="Where the source does not compile (it is stored anyway; a run that loads it fails)"
    )
    requires: list[str] = Field(description="The libraries this version loads (lib/… specifiers)")


class LibraryData(BaseModel):
    data: LibraryOut


class LibrarySummaryOut(BaseModel):
    name: str
    version: int = Field(description="The latest version")
    size: int
    createdAt: str
    updatedAt: str


class LibraryList(BaseModel):
    data: list[LibrarySummaryOut]
    total: int


class VersionOut(BaseModel):
    version: int
    createdAt: str
    size: int


class VersionList(BaseModel):
    data: list[VersionOut]
    total: int


class UserJobOut(BaseModel):
    jobId: str
    name: str


class UsageOut(BaseModel):
    jobs: list[UserJobOut]
    libraries: list[str]


class UsageData(BaseModel):
    data: UsageOut


class LibraryInUseOut(UsageOut):
    error: str


class LibraryDeletedOut(BaseModel):
    name: str
    deleted: bool


class LibraryDeletedData(BaseModel):
    data: LibraryDeletedOut


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Bad input", 404: "No such library or version", 409: "A library with that name exists",
            413: "Body too large"}
    return {code: {"model": ErrorOut, "description": text[code]} for code in codes}


# --------------------------------------------------------------------------- JSON


def _library_json(lv: LibraryVersion, prepared: PreparedLibrary, latest: bool) -> dict[str, Any]:
    return {
        "name": lv.name,
        "version": lv.version,
        "latest": latest,
        "source": lv.source,
        "size": lv.size,
        "createdAt": to_rfc3339(lv.created_at),
        "syntaxError": syntax_json(prepared.error),
        "requires": list(prepared.requires),
    }


def _summary_json(info: LibraryInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "size": info.size,
        "createdAt": to_rfc3339(info.created_at),
        "updatedAt": to_rfc3339(info.updated_at),
    }


def _version_json(info: VersionInfo) -> dict[str, Any]:
    return {"version": info.version, "createdAt": to_rfc3339(info.created_at), "size": info.size}


def _service(request: Request) -> LibraryService:
    return LibraryService(context(request).engine)


# --------------------------------------------------------------------------- routes


@router.get("", summary="List libraries with their latest version", response_model=LibraryList)
async def list_libraries(request: Request) -> JSONResponse:
    infos = await _service(request).list()
    return JSONResponse({"data": [_summary_json(i) for i in infos], "total": len(infos)})


@router.post("", summary="Create a library (its version 1)", status_code=201, response_model=LibraryData,
             responses=_errors(400, 409, 413))
async def create_library(request: Request, body: LibraryInput = Body(...)) -> JSONResponse:
    lv, prepared = await _service(request).create(body.name, body.source)
    return JSONResponse({"data": _library_json(lv, prepared, True)}, status_code=201)


@router.get("/{name}", summary="A library's latest version, or ?version=N", response_model=LibraryData,
            responses=_errors(404))
async def get_library(
    request: Request,
    name: str = NAME,
    version: int | None = Query(None, ge=1, le=10**9, description="a version number (default: the latest)"),
) -> JSONResponse:
    service = _service(request)
    lv, prepared = await service.get(name, version)
    latest = version is None or (await service.store.get_library(lv.name)) == lv
    return JSONResponse({"data": _library_json(lv, prepared, latest)})


@router.put("/{name}", summary="Store a new version of a library", response_model=LibraryData,
            responses=_errors(400, 404, 413))
async def update_library(request: Request, name: str = NAME, body: LibrarySourceInput = Body(...)) -> JSONResponse:
    lv, prepared = await _service(request).update(name, body.source)
    return JSONResponse({"data": _library_json(lv, prepared, True)})


@router.get("/{name}/versions", summary="A library's versions, newest first", response_model=VersionList,
            responses=_errors(404))
async def list_versions(request: Request, name: str = NAME) -> JSONResponse:
    versions = await _service(request).versions(name)
    return JSONResponse({"data": [_version_json(v) for v in versions], "total": len(versions)})


@router.get("/{name}/usage", summary="Jobs and libraries that load this library", response_model=UsageData,
            responses=_errors(404))
async def library_usage(request: Request, name: str = NAME) -> JSONResponse:
    service = _service(request)
    await service.get(name)
    usage = await service.usage(name)
    return JSONResponse({"data": _usage_json(usage)})


def _usage_json(usage: Any) -> dict[str, Any]:
    return {"jobs": [{"jobId": job_id, "name": job_name} for job_id, job_name in usage.jobs],
            "libraries": usage.libraries}


@router.delete(
    "/{name}",
    summary="Delete a library and all its versions",
    description="Refused with 409 while jobs or other libraries refer to it (the answer lists them), "
    "unless `force=true`.",
    response_model=LibraryDeletedData,
    responses={**_errors(404), 409: {"model": LibraryInUseOut, "description": "Still used by jobs or libraries"}},
)
async def delete_library(
    request: Request,
    name: str = NAME,
    force: bool = Query(False, description="delete even while jobs or libraries use it"),
) -> JSONResponse:
    try:
        await _service(request).delete(name, force=force)
    except LibraryInUse as exc:
        return JSONResponse({"error": str(exc), **_usage_json(exc.usage)}, status_code=409)
    return JSONResponse({"data": {"name": name, "deleted": True}})
