#!/usr/bin/env bash
# Installs what Syncy needs to build and test on Debian 12 / Ubuntu 22.04+, idempotently:
# FFmpeg development libraries (5.1 on Debian 12), clang/libclang for ffmpeg-sys bindings,
# pkg-config, ALSA headers for audio (cpal), tmux for terminal end-to-end tests, mpv for
# `--player mpv` (and its test), coturn (a STUN/TURN server for the network tests), iproute2 and
# nftables (the network tests build LANs, NAT routers and an "internet" out of namespaces),
# miniupnpd (a router's UPnP, for the --upnp test), Xvfb, xterm, kitty (with Mesa's software
# GL), xwd and ImageMagick (the picture in real terminals, screenshotted), redis-server (the
# `syncy serve --cluster` test runs its own on a Unix socket), and a Rust toolchain if none is
# present.
# Debian leaves the coturn and miniupnpd services off; the tests run their own. Debian does
# start a redis-server service (localhost:6379) on install: nothing here uses it
# (`systemctl disable --now redis-server` turns it off).
set -euo pipefail

packages=(pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev
          libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev libasound2-dev tmux mpv coturn iproute2
          nftables miniupnpd xvfb xauth xterm kitty imagemagick x11-apps libgl1-mesa-dri
          fonts-dejavu-core redis-server)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "cargo not found: install Rust from https://rustup.rs (1.85 or newer)" >&2
    exit 1
  fi
fi

# CI checks format and lints (.ci/run): the toolchain's rustfmt and clippy.
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >&2
  done
fi
