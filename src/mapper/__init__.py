"""flowhook's mapping runtime: request in, validated trigger request out.

A pure library: no HTTP, no database. See `compile_mapping`.
"""

from mapper.errors import MappingSpecError, RequestBodyError, UnsupportedContentType
from mapper.limits import Limits
from mapper.mapping import Mapping, compile_mapping
from mapper.request import make_request
from mapper.result import MappingResult
from mapper.sample import SampleError, SampleLimits, read_sample, request_from_file

__all__ = [
    "Limits",
    "Mapping",
    "MappingResult",
    "MappingSpecError",
    "RequestBodyError",
    "SampleError",
    "SampleLimits",
    "UnsupportedContentType",
    "compile_mapping",
    "make_request",
    "read_sample",
    "request_from_file",
]
