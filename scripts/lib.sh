# Shared by scripts/demo and scripts/test: installs what is missing from Debian/Ubuntu packages.
# Sourced, not run.

# Packages the build, the tests and the demo need.
REDIS_TASKS_PACKAGES=(
  cmake g++ make pkg-config
  libhiredis-dev nlohmann-json3-dev catch2 libssl-dev
  redis-server redis-tools openssl
)

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "need root (or sudo) to run: $*" >&2
    return 1
  fi
}

# ensure_packages [extra packages...]: installs every listed package that is not installed yet.
ensure_packages() {
  local missing=()
  local p
  for p in "${REDIS_TASKS_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "==> installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  # The redis-server package may start a system service on 6379; the project never uses it.
}

build_jobs() { nproc 2>/dev/null || echo 2; }
