#!/bin/sh
# What `pip install -e .` needs from the system to compile the C modules (setup.py): a C
# compiler, the Python headers and OpenSSL's headers. Installs the missing ones on Debian
# (and derivatives); does nothing when all are present, as on the standard image.
set -eu
python=${PYTHON:-python}
missing=""
command -v gcc >/dev/null 2>&1 || missing="$missing gcc libc6-dev"
[ -f /usr/include/openssl/sha.h ] || missing="$missing libssl-dev"
"$python" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing="$missing python3-dev"
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "build-deps: please install:$missing (a C compiler, OpenSSL and Python headers)" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "build-deps: installing$missing" >&2
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
