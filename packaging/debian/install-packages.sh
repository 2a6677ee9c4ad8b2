#!/bin/sh
# Installs the Debian/Ubuntu packages that one use of cloudvol needs, and nothing more.
#
#   install-packages.sh [--dry-run] run|test|bench
#
#   run    the daemon: FUSE 3, and what building pyfuse3 needs (it ships no wheels)
#   test   run's packages, plus what the test suite drives: sshd, busybox, rclone,
#          sshfs, and a Docker engine only when the host has none
#   bench  test's packages (the benchmarks compare against rclone and sshfs)
#
# A Docker engine is the operator's. This script never installs one for `run`, and it
# never lets apt remove a package (--no-remove): Debian's docker.io conflicts with
# Docker's own docker-ce packages, and replacing an operator's engine is the worst
# thing a volume plugin's installer could do. --dry-run prints the apt-get command
# instead of running it ("nothing to install" when all is there).
set -eu

dry_run=false
if [ "${1:-}" = "--dry-run" ]; then
    dry_run=true
    shift
fi
role=${1:-}

RUN_PACKAGES="fuse3 libfuse3-dev pkg-config gcc python3-dev python3-venv"
TEST_PACKAGES="openssh-server openssh-client busybox-static rclone sshfs psmisc iproute2 mmdebstrap"
# The workloads of issue 11 (git, rsync and sqlite3 on a volume).
TEST_PACKAGES="$TEST_PACKAGES git rsync sqlite3"
# issue 13's remotes: Samba's smbd serves the SMB tests on a loopback port.
TEST_PACKAGES="$TEST_PACKAGES samba"

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# Any engine, or any part of Docker's own packages, means the host's Docker is not ours
# to replace. The docker CLI alone is not an engine: it is often a static binary.
has_docker_engine() {
    for package in docker-ce docker-ce-cli docker.io moby-engine; do
        installed "$package" && return 0
    done
    command -v dockerd >/dev/null 2>&1
}

case "$role" in
    run) wanted=$RUN_PACKAGES ;;
    test | bench)
        wanted="$RUN_PACKAGES $TEST_PACKAGES"
        if ! has_docker_engine; then
            wanted="$wanted docker.io"
        fi
        ;;
    *)
        echo "usage: $0 [--dry-run] run|test|bench" >&2
        exit 2
        ;;
esac

# The azureblob tests run Azurite, which npm installs (Makefile): Debian's npm brings
# Node.js. A host with Node.js from elsewhere (npm included) keeps its own.
if [ "$role" != run ] && ! command -v npm >/dev/null 2>&1; then
    wanted="$wanted npm"
fi

missing=""
for package in $wanted; do
    installed "$package" || missing="$missing $package"
done

# After an install, the tests still need an engine: Docker's packages installed in part
# (a CLI without its engine) are left as they are, and the operator is told.
require_engine_for_tests() {
    if [ "$role" != run ] && ! $dry_run && ! command -v dockerd >/dev/null 2>&1; then
        echo "$0: the tests need a Docker engine (dockerd), and Docker's own packages are" \
            "installed in part here: install docker-ce to run them" >&2
        exit 1
    fi
}

if [ -z "$missing" ]; then
    $dry_run && echo "nothing to install"
    require_engine_for_tests
    exit 0
fi

command="apt-get install -y -q --no-install-recommends --no-remove$missing"
if $dry_run; then
    echo "$command"
    exit 0
fi
apt-get update -q
# shellcheck disable=SC2086  # the package list is meant to split into words
DEBIAN_FRONTEND=noninteractive $command
require_engine_for_tests
