"""The floor of the API figure: a bare FastAPI app answering the same two routes with
constants (no validation model, no store), served by the same uvicorn."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()

_JOB = {"jobId": "00000000-0000-0000-0000-000000000000", "name": "bench", "description": "", "execType": 0,
        "cron": "0 0 * * *", "execAt": None, "state": 0, "lastExecTime": None}


@app.post("/api/job")
async def create_job(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"id": _JOB["jobId"], "data": _JOB["jobId"]})


@app.get("/api/job")
async def get_job(id: str) -> JSONResponse:
    return JSONResponse({"data": _JOB})


@app.get("/healthz")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})
