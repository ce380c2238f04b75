# Shared by scripts/run and scripts/test: install what is missing, configure and build.
# Sourced, not run. Everything comes from Debian's packages.

BUILD_PACKAGES=(g++ meson ninja-build pkg-config libevent-dev libyaml-cpp-dev libre2-dev
                libidn2-dev doctest-dev libxxhash-dev python3 libsystemd-dev libcurl4-openssl-dev
                libhowardhinnant-date-dev tzdata)
# scdoc: the man pages; systemd: systemd-analyze; man-db: man --warnings (service_test);
# python3-pacparser: a real PAC engine (pac_test); chromium-driver, python3-selenium: Chromium's
# own error page for a refused tunnel; firefox-esr, libfirefox-marionette-perl: Firefox's
# (browser_test).
TEST_PACKAGES=(curl nginx libnginx-mod-http-echo openssl chromium goaccess scdoc systemd man-db
               python3-pacparser chromium-driver python3-selenium firefox-esr
               libfirefox-marionette-perl)
# scripts/fuzz: clang, and libFuzzer's runtime (Debian ships it with compiler-rt).
FUZZ_PACKAGES=(clang libclang-rt-14-dev)

# ensure_packages PKG...: apt-get only when something is missing.
ensure_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    echo "installing: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}

# build_hallpass BUILDDIR [meson options...]: configure once, then build everything, or only
# the targets in BUILD_TARGETS (scripts/run: just the binary, so a first start is quick).
build_hallpass() {
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@"
    else
        meson configure "$dir" "$@" >/dev/null
    fi
    # shellcheck disable=SC2086
    ninja -C "$dir" ${BUILD_TARGETS:-}
}
