"""Sends one HTTP request to the control plane, signed with botocore's own
SigV4 signer (the reference implementation the AWS CLI uses), and prints
{status, headers, body} as JSON. Used by the Rust tests for requests the CLI
would refuse to send (values outside the model, malformed bodies) and for
deliberately broken signatures.

stdin: one request object or a list of them: {"method", "url", "body" (str),
        "region", "access_key", "secret", "tamper_body": optional body sent
        instead of the signed one,
        "sign": "botocore" | "none", "amz_date": optional override,
        "headers": optional extra headers}
"""
import datetime
import http.client
import json
import sys
import urllib.parse

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def send(req):
    method, url, body = req["method"], req["url"], req.get("body", "").encode()
    headers = {"Content-Type": "application/json"} if body else {}
    headers.update(req.get("headers", {}))
    if req.get("sign", "botocore") == "botocore":
        aws_req = AWSRequest(method=method, url=url, data=body, headers=headers)
        signer = SigV4Auth(Credentials(req["access_key"], req["secret"]), "kafka", req["region"])
        if req.get("amz_date"):
            # Sign as if at another time (expired / future requests).
            import botocore.auth as auth_mod
            fixed = datetime.datetime.strptime(req["amz_date"], "%Y%m%dT%H%M%SZ")
            real = auth_mod.get_current_datetime
            auth_mod.get_current_datetime = lambda *a, **k: fixed
            try:
                signer.add_auth(aws_req)
            finally:
                auth_mod.get_current_datetime = real
        else:
            signer.add_auth(aws_req)
        headers = dict(aws_req.headers.items())
        if "tamper_body" in req:
            body = req["tamper_body"].encode()
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    path = parts.path + ("?" + parts.query if parts.query else "")
    conn.request(method, path, body=body or None, headers=headers)
    resp = conn.getresponse()
    out = {
        "status": resp.status,
        "headers": {k.lower(): v for k, v in resp.getheaders()},
        "body": resp.read().decode("utf-8", "replace"),
    }
    return out


def main():
    req = json.load(sys.stdin)
    if isinstance(req, list):
        print(json.dumps([send(r) for r in req]))
    else:
        print(json.dumps(send(req)))


main()
