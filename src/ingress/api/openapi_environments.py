"""The OpenAPI description of the Environments API; `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from ingress.api.environments import ID_PATTERN, MAX_NAME, RESERVED_IDS
from ingress.api.openapi import STRING, TIME, Schema, closed, list_of, obj, operation, path_param, ref, responses

TAG = "environments"
ID: Schema = {
    "type": "string",
    "pattern": ID_PATTERN,
    "not": {"enum": sorted(RESERVED_IDS)},
    "description": "Appears in the environment's URLs (`/v1/{env}/…`).",
}

SCHEMAS: dict[str, Schema] = {
    "EnvironmentInput": closed(
        obj(
            {
                "id": ID,
                "name": {**STRING, "minLength": 1, "maxLength": MAX_NAME, "description": "Defaults to the id."},
            },
            ("id",),
        )
    ),
    "Environment": obj({"id": STRING, "name": STRING, "createdAt": TIME}, ("id", "name", "createdAt")),
}


def environment_paths() -> dict[str, Any]:
    return {
        "/v1/environments": {
            "post": operation(
                "Create an environment",
                TAG,
                responses(201, ref("Environment"), "Created, empty, its settings at their defaults.", 401, 409, 422),
                description="409 environment_exists when the id is taken. Environments cannot be deleted.",
                body=ref("EnvironmentInput"),
            ),
            "get": operation(
                "List environments, oldest first",
                TAG,
                responses(200, list_of("Environment"), "Environments.", 401),
            ),
        },
        "/v1/environments/{envId}": {
            "parameters": [path_param("envId", "Environment id.")],
            "get": operation(
                "Read an environment", TAG, responses(200, ref("Environment"), "The environment.", 401, 404)
            ),
        },
    }
