"""The management API (`/v1/environments`, `/v1/{env}/…`, admin token) and its OpenAPI description."""
