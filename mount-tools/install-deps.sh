# Sourced by tests/run and mount-tools/quickstart: install the Debian
# packages evlogfs needs that are missing (one apt-get update at most).
# Usage: install_missing PACKAGE...
install_missing() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing packages: ${missing[*]} (run as root to install them)" >&2
		return 2
	fi
	echo "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" </dev/null
}

EVLOGFS_BUILD_DEPS=(libfuse3-dev fuse3 liblmdb-dev libcmocka-dev libjson-c-dev libsimdjson-dev g++
                    libxxhash-dev meson ninja-build pkg-config)
