"""moto's EC2 server with spot interruptions, which moto does not model (moto only marks a
RunInstances with InstanceMarketOptions as lifecycle "spot").

Run as moto_server is run (same arguments). On top of moto it keeps, as EC2 does:
- the market options each RunInstances asked for, by instance id (GET /_gitspaces/ec2/market?instanceId=);
- an interruption (POST /_gitspaces/ec2/interrupt {"instanceId"}): only a spot instance; with
  InstanceInterruptionBehavior stop moto stops it (volumes kept) and it shows StateReason
  Server.SpotInstanceShutdown; with terminate it is terminated (Server.SpotInstanceTermination);
- StartInstances of an interrupted instance is refused with IncorrectSpotRequestState: only EC2
  restarts it, once capacity returns (POST /_gitspaces/ec2/capacity {"instanceId"} restarts it).
"""
import json
import sys
import threading
from datetime import datetime, timezone
from io import BytesIO
from urllib.parse import parse_qs

import moto.server as server
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import StateReason

SPOT_STOP = "Server.SpotInstanceShutdown"
SPOT_TERMINATE = "Server.SpotInstanceTermination"
WHY = (
    "The instance was {} because the number of Spot requests with a maximum price equal to or higher"
    " than the Spot price exceeded available capacity or because of an increase in the Spot price."
)

lock = threading.Lock()
market = {}  # instance id -> the RunInstances InstanceMarketOptions.* parameters
interrupted = set()  # instance ids stopped by an interruption, until EC2 restarts them


def instance(instance_id):
    for account in dict.values(ec2_backends):
        for backend in dict.values(account):
            found = backend.get_instance_by_id(instance_id)
            if found is not None:
                return found
    return None


def reply(start_response, status, body, content_type="application/json"):
    data = body.encode() if isinstance(body, str) else body
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]


def ec2_error(start_response, code, message):
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>moto-spot</RequestID></Response>"
    )
    return reply(start_response, "400 Bad Request", xml, "text/xml")


def interrupt(instance_id):
    inst = instance(instance_id)
    if inst is None:
        return "404 Not Found", {"error": f"no instance {instance_id}"}
    opts = market.get(instance_id, {})
    if inst.lifecycle != "spot" or opts.get("MarketType") != "spot":
        return "409 Conflict", {"error": f"{instance_id} is not a spot instance; EC2 interrupts only those"}
    if inst.state != "running":
        return "409 Conflict", {"error": f"{instance_id} is {inst.state}; only a running instance is interrupted"}
    at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S GMT")
    if opts.get("InstanceInterruptionBehavior", "terminate") == "stop":
        inst.stop()
        code, verb = SPOT_STOP, "stopped"
        with lock:
            interrupted.add(instance_id)
    else:
        backend = inst.ec2_backend
        backend.terminate_instances([instance_id])
        code, verb = SPOT_TERMINATE, "terminated"
    inst._reason = f"Service initiated ({at})"
    inst.state_reason = StateReason(f"{code}: {WHY.format(verb)}", code)
    return "200 OK", {"instanceId": instance_id, "state": inst.state, "code": code}


def restart(instance_id):
    inst = instance(instance_id)
    with lock:
        was = instance_id in interrupted
        interrupted.discard(instance_id)
    if inst is None or not was:
        return "409 Conflict", {"error": f"{instance_id} is not an interrupted spot instance"}
    inst.start()
    return "200 OK", {"instanceId": instance_id, "state": inst.state}


class SpotApplication(server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_gitspaces/ec2/"):
            return self.hook(path, environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            return super().__call__(environ, start_response)
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size else b""
        environ["wsgi.input"] = BytesIO(body)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        action = form.get("Action")
        if action == "StartInstances":
            with lock:
                refused = [v for k, v in form.items() if k.startswith("InstanceId.") and v in interrupted]
            if refused:
                return ec2_error(start_response, "IncorrectSpotRequestState", "Only Amazon EC2 can restart an interrupted stopped Spot Instance.")
        if action != "RunInstances" or "InstanceMarketOptions.MarketType" not in form:
            return super().__call__(environ, start_response)
        chunks = []
        status_headers = {}

        def capture(status, headers, exc_info=None):
            status_headers["status"], status_headers["headers"] = status, headers
            return chunks.append

        chunks.extend(super().__call__(environ, capture))
        data = b"".join(chunks)
        opts = {k.split(".")[-1]: v for k, v in form.items() if k.startswith("InstanceMarketOptions.")}
        for instance_id in set(part.split("</instanceId>")[0] for part in data.decode("utf-8", "replace").split("<instanceId>")[1:]):
            market[instance_id] = opts
        start_response(status_headers["status"], status_headers["headers"])
        return [data]

    def hook(self, path, environ, start_response):
        if environ.get("REQUEST_METHOD") == "GET" and path == "/_gitspaces/ec2/market":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            instance_id = (query.get("instanceId") or [""])[0]
            return reply(start_response, "200 OK", json.dumps(market.get(instance_id, {})))
        size = int(environ.get("CONTENT_LENGTH") or 0)
        args = json.loads(environ["wsgi.input"].read(size) or b"{}") if size else {}
        instance_id = str(args.get("instanceId", ""))
        if path == "/_gitspaces/ec2/interrupt":
            status, out = interrupt(instance_id)
        elif path == "/_gitspaces/ec2/capacity":
            status, out = restart(instance_id)
        else:
            status, out = "404 Not Found", {"error": path}
        return reply(start_response, status, json.dumps(out))


server.DomainDispatcherApplication = SpotApplication

if __name__ == "__main__":
    server.main(sys.argv[1:])
