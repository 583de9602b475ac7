"""AWS failures a person can fix, as one clear message (stedi/errors.py) instead of a botocore traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from stedi.errors import PermanentError, UserError

#: Error codes meaning "your credentials may not do this" (IAM) or "they are not valid".
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
           "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch"}
_NOT_FOUND = {"ResourceNotFoundException", "ParameterNotFound", "NoSuchEntity", "EntityNotFoundException",
              "NoSuchBucket", "NotFoundException"}


@contextlib.contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Turn the botocore errors of ``doing`` that a person causes into a UserError: no region
    or credentials (exit 2), access denied or a missing resource (exit 3)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    try:
        yield
    except NoRegionError:
        raise UserError(f"{doing}: no AWS region is configured",
                        hint="set AWS_DEFAULT_REGION, or a region in ~/.aws/config (AWS_PROFILE)") from None
    except (NoCredentialsError, PartialCredentialsError):
        raise UserError(f"{doing}: no AWS credentials were found",
                        hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (see docs/aws.md)") from None
    except EndpointConnectionError as exc:
        raise UserError(f"{doing}: cannot reach AWS ({exc})",
                        hint="check the network, AWS_REGION and AWS_ENDPOINT_URL") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        if code in _DENIED:
            raise PermanentError(f"{doing}: access denied ({code}: {message})",
                                 hint="the IAM policies are in docs/iam/ (docs/aws.md, 'IAM')") from None
        if code in _NOT_FOUND:
            raise PermanentError(f"{doing}: not found ({code}: {message})") from None
        raise
