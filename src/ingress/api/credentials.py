"""The Credentials API: OAuth2 clients for the Action Flow API (admin token only).

The client secret is in the creation answer and nowhere else: the store
keeps a salted scrypt hash. Deleting a credential revokes it, and every
token issued to it stops working with the next request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.access_tokens import ROLES
from ingress.api.common import (
    delete_found,
    environment,
    field,
    json_object,
    read_found,
    refuse_unknown,
    services,
)
from ingress.api.triggers import base_url
from ingress.auth import admin_only
from ingress.client_secrets import hash_secret, new_client_id, new_client_secret
from ingress.errors import ApiError
from ingress.jsonio import json_response
from store import credentials
from store.clock import iso, utcnow
from store.credentials import Credential

CREATE_FIELDS = {"name", "roles"}
MAX_NAME = 200  # as for environments and card templates


def credential_view(credential: Credential) -> dict[str, Any]:
    return {
        "clientId": credential.client_id,
        "environmentId": credential.environment_id,
        "name": credential.name,
        "roles": credential.roles,
        "createdAt": iso(credential.created_at),
    }


def _name(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != "" and len(value) <= MAX_NAME


def _roles(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(role, str) and role in ROLES for role in value)
        and len(set(value)) == len(value)
    )


@admin_only
async def create_credential(request: Request) -> Response:
    env = await environment(request)
    data = await json_object(request)
    refuse_unknown(data, CREATE_FIELDS)
    name = field(data, "name", _name, f"a non-empty string of at most {MAX_NAME} characters", None)
    roles = field(data, "roles", _roles, f"a non-empty list of distinct roles from: {', '.join(ROLES)}", None)
    for missing, value in (("name", name), ("roles", roles)):
        if value is None:
            raise ApiError(422, "invalid_field", f"{missing} is required", path=f"$.{missing}")
    secret = new_client_secret()
    secret_hash = await asyncio.to_thread(hash_secret, secret)
    credential = Credential(new_client_id(), env, name, roles, secret_hash, utcnow())
    await services(request).store.write(lambda conn: credentials.insert_credential(conn, credential))
    created = {**credential_view(credential), "clientSecret": secret, "tokenUrl": f"{base_url(request)}/oauth/token"}
    return json_response(created, 201)


@admin_only
async def list_credentials(request: Request) -> Response:
    env = await environment(request)
    found = await services(request).store.read(lambda conn: credentials.list_credentials(conn, env))
    return json_response({"data": [credential_view(credential) for credential in found]})


@admin_only
async def get_credential(request: Request) -> Response:
    env = await environment(request)
    client_id = request.path_params["clientId"]

    def read(conn: Connection) -> Credential | None:
        found = credentials.get_credential(conn, client_id)
        return found if found is not None and found.environment_id == env else None

    return json_response(credential_view(await read_found(request, "credential", client_id, read)))


@admin_only
async def delete_credential(request: Request) -> Response:
    env = await environment(request)
    client_id = request.path_params["clientId"]
    try:
        return await delete_found(
            request, "credential", client_id, lambda conn: credentials.delete_credential(conn, env, client_id)
        )
    finally:  # once the revocation is committed, or when cancelled while it was queued (the write stands)
        services(request).tokens.forget_client(client_id)


routes = [
    Route("/credentials", create_credential, methods=["POST"]),
    Route("/credentials", list_credentials, methods=["GET"]),
    Route("/credentials/{clientId}", get_credential, methods=["GET"]),
    Route("/credentials/{clientId}", delete_credential, methods=["DELETE"]),
]
