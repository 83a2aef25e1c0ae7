#!/usr/bin/env bash
# Encrypt with a ten-statement key policy and three grants against a key with the
# default policy, on one node, in one run.
#
#   bench/authz.sh [KEYFENCE_BIN]          # default target/release/keyfence
#   PAIRS=4 DURATION=8s bench/authz.sh
#
# Starts one node, makes key A (default key policy) and key B (the policy below:
# ten statements with conditions, none of which lets the bench's caller Encrypt, and
# three grants, the third of them the caller's — so every request walks all ten
# statements and the grants), then runs `keyfence bench --workload encrypt` against
# A and B in ABBA pairs (A,B / B,A / …) so drifting load hits both alike. Prints the
# per-pair B/A ratios of throughput and node CPU per request. Keeps every run's JSON
# in OUT (target/authz-bench). Only 127.0.0.1 is contacted. Not part of CI.
#
# Environment: PAIRS (3), DURATION (8s), WARMUP (2s), CONNECTIONS (32), PAYLOAD (256),
# PYTHON (target/e2e-venv/bin/python, for boto3), OUT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$ROOT/target/release/keyfence}")"
PAIRS="${PAIRS:-3}"
DURATION="${DURATION:-8s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-32}"
PAYLOAD="${PAYLOAD:-256}"
PYTHON="${PYTHON:-$ROOT/target/e2e-venv/bin/python}"
OUT="${OUT:-$ROOT/target/authz-bench}"
log() { echo "authz-bench: $*" >&2; }

rm -rf "$OUT"
mkdir -p "$OUT"
DATA="$OUT/data"
"$BIN" server --data-dir "$DATA" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 >"$OUT/node.log" 2>&1 &
NODE_PID=$!
trap 'kill "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
    [[ -f "$DATA/node.addr.json" ]] && break
    kill -0 "$NODE_PID" || { log "node exited"; cat "$OUT/node.log"; exit 1; }
    sleep 0.2
done
API="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$DATA/node.addr.json")"
MET="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics"])' "$DATA/node.addr.json")"

# Keys A and B; prints "A B".
read -r KEY_A KEY_B < <("$PYTHON" - "$DATA" "https://$API" <<'PY'
import json, sys, tomllib
import boto3
data, endpoint = sys.argv[1], sys.argv[2]
cred = tomllib.load(open(f"{data}/credentials.toml", "rb"))["credentials"][0]
kms = boto3.client("kms", endpoint_url=endpoint, verify=f"{data}/ca.pem", region_name="us-east-1",
                   aws_access_key_id=cred["access_key_id"], aws_secret_access_key=cred["secret_access_key"])
me = f"arn:aws:iam::{cred['account_id']}:user/{cred['user_name']}"
acct = cred["account_id"]
a = kms.create_key(Description="authz bench: default policy")["KeyMetadata"]["KeyId"]
crypto = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
statements = [
    {"Sid": "Root, all but cryptography", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{acct}:root"},
     "NotAction": crypto, "Resource": "*"},
    {"Sid": "Key administrators", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{acct}:role/KMSAdmin"},
     "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:ScheduleKeyDeletion"], "Resource": "*"},
    {"Sid": "Key users", "Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::{acct}:user/app1", f"arn:aws:iam::{acct}:role/app2"]},
     "Action": crypto + ["kms:DescribeKey"], "Resource": "*"},
    {"Sid": "Persistent resources", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{acct}:user/app1"},
     "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"], "Resource": "*",
     "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}},
    {"Sid": "Another account", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
     "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
     "Condition": {"StringEquals": {"kms:CallerAccount": "444455556666"}}},
    {"Sid": "Tenants by context", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{acct}:role/tenant"},
     "Action": "kms:Decrypt", "Resource": "*",
     "Condition": {"ForAllValues:StringLike": {"kms:EncryptionContextKeys": ["tenant*", "app*"]}}},
    {"Sid": "No top secrets", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
     "Condition": {"StringEquals": {"kms:EncryptionContext:classification": "top-secret"}}},
    {"Sid": "Only from here", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
     "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "10.0.0.0/8", "::1/128"]}}},
    {"Sid": "Until 2099", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
     "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"}}},
    {"Sid": "Auditors", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{acct}:role/Auditor"},
     "Action": ["kms:Describe*", "kms:Get*", "kms:List*"], "Resource": "*",
     "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{acct}:role/Audit*"}}},
]
assert len(statements) == 10
b = kms.create_key(Description="authz bench: ten statements, three grants",
                   Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))["KeyMetadata"]["KeyId"]
for grantee in (f"arn:aws:iam::{acct}:user/app1", f"arn:aws:iam::{acct}:role/app2", me):
    kms.create_grant(KeyId=b, GranteePrincipal=grantee,
                     Operations=["Encrypt", "Decrypt", "GenerateDataKey", "DescribeKey"])
# The policy alone does not let the caller use B (ReEncrypt is in no grant).
blob = kms.encrypt(KeyId=b, Plaintext=b"x")["CiphertextBlob"]
try:
    kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=b)
    raise SystemExit("ReEncrypt on B was allowed")
except kms.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "AccessDeniedException", e
print(a, b)
PY
)
log "key A (default policy) $KEY_A, key B (10 statements, 3 grants) $KEY_B"
{ echo "nproc: $(nproc)"; echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"; echo "bin: $BIN"
  echo "PAIRS=$PAIRS DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS PAYLOAD=$PAYLOAD"; } >"$OUT/machine.txt"

run() { # NAME KEY
    echo "$1 $(uptime)" >>"$OUT/load.txt"
    "$BIN" bench --workload encrypt --key-id "$2" --payload-size "$PAYLOAD" --connections "$CONNECTIONS" \
        --duration "$DURATION" --warmup "$WARMUP" --endpoint "https://$API" --data-dir "$DATA" \
        --metrics "http://$MET" --pid "$NODE_PID" --json >"$OUT/$1.json"
}
for i in $(seq 1 "$PAIRS"); do
    if (( i % 2 == 1 )); then run "a-$i" "$KEY_A"; run "b-$i" "$KEY_B"; else run "b-$i" "$KEY_B"; run "a-$i" "$KEY_A"; fi
done

"$PYTHON" - "$OUT" "$PAIRS" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def get(side, i):
    return json.load(open(f"{out}/{side}-{i}.json"))
print(open(f"{out}/machine.txt").read().strip())
print(open(f"{out}/load.txt").read().strip())
rows = []
for i in range(1, pairs + 1):
    a, b = get("a", i), get("b", i)
    ca = (a.get("cpu") or {}).get("node_us_per_op"); cb = (b.get("cpu") or {}).get("node_us_per_op")
    rows.append((a["ops_per_s"], b["ops_per_s"], ca, cb, a.get("errors"), b.get("errors")))
print("pair  A ops/s  B ops/s  B/A   A node µs/req  B node µs/req  A/B cpu  errors")
for n, (a, b, ca, cb, ea, eb) in enumerate(rows, 1):
    cpu = f"{ca / cb:.3f}" if ca and cb else "-"
    print(f"{n:>4}  {a:>7.0f}  {b:>7.0f}  {b / a:.3f}  {ca or 0:>13.1f}  {cb or 0:>13.1f}  {cpu:>7}  {ea or eb or 'none'}")
ratios = [b / a for a, b, *_ in rows]
cpus = [ca / cb for _, _, ca, cb, *_ in rows if ca and cb]
print(f"median throughput B/A: {statistics.median(ratios):.3f}")
if cpus:
    print(f"median node CPU per request A/B (1 = no cost): {statistics.median(cpus):.3f}")
PY
