#!/usr/bin/env bash
# The package stage: hvguard as operators install it. The systemd unit
# (systemd-analyze verify, and its security exposure below a threshold), the
# man page, `make deb` and lintian, the packaged binary run from a scratch
# root (dpkg -x), `make install`/`uninstall` into a scratch DESTDIR, the
# default rules path and sd_notify. Needs no running systemd and never
# touches the host's /etc, /usr or systemd: everything goes under a scratch
# directory. TAP-style lines; nothing is skipped.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

# systemd-analyze security's overall exposure (0 = locked down, 10 = none).
# Measured 4.0 on Debian 12's systemd 252; the threshold leaves room for
# nothing more than a rounding change, so any setting dropped or capability
# added shows up here.
EXPOSURE_MAX=4.5
# The unit's capability bounding set, exactly (see packaging/hvguard.service).
UNIT_CAPS="CAP_BPF CAP_DAC_READ_SEARCH CAP_KILL CAP_PERFMON CAP_SYSLOG CAP_SYS_ADMIN CAP_SYS_PTRACE"

failed=0
ok() { echo "ok - $1"; }
nok() { # name why
	echo "not ok - $1 # $(printf '%s' "$2" | tr '\n' ' ' | cut -c1-400)"
	failed=$((failed + 1))
}
# check NAME COMMAND...: ok when COMMAND succeeds, else its last output lines.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else nok "$name" "$(printf '%s' "$out" | tail -4)"; fi
}

scratch=$(mktemp -d /tmp/hvguard-package.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# --- tools -------------------------------------------------------------------
tools_ok=1
for t in systemd-analyze:systemd lintian:lintian dpkg-deb:dpkg dpkg-shlibdeps:dpkg-dev \
	man:man-db setpriv:util-linux unshare:util-linux python3:python3; do
	if command -v "${t%%:*}" >/dev/null; then
		ok "tool ${t%%:*} present"
	else
		nok "tool ${t%%:*} present" "not installed (Debian package ${t#*:}: make test-deps)"
		tools_ok=0
	fi
done

# --- the man page --------------------------------------------------------------
man_warn=$(MANWIDTH=80 man --warnings -l docs/hvguard.8 2>&1 >/dev/null)
if [ -z "$man_warn" ] && MANWIDTH=80 man -l docs/hvguard.8 2>/dev/null | grep -q '^EXIT STATUS'; then
	ok "hvguard.8 renders without warnings"
else
	nok "hvguard.8 renders without warnings" "${man_warn:-no EXIT STATUS section in the output}"
fi

# Every long option of `run --help` and `audit --help`, every `rules`
# subcommand, is in the man page (roff spells '-' as '\-').
if [ -x build/hvguard ] || make -s all >/dev/null 2>&1; then
	missing=()
	for cmd in run audit; do
		for o in $(build/hvguard $cmd --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
			grep -qF -- "$(printf '%s' "$o" | sed 's/-/\\-/g')" docs/hvguard.8 ||
				missing+=("$cmd $o")
		done
	done
	for s in $(build/hvguard rules --help | grep -oE 'hvguard rules [a-z]+' | awk '{print $3}'); do
		grep -qE "^\.B[IR]? ($s|$s )" docs/hvguard.8 || missing+=("rules $s")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		ok "hvguard.8 documents every option of run, audit and rules"
	else
		nok "hvguard.8 documents every option of run, audit and rules" "missing: ${missing[*]}"
	fi
else
	nok "hvguard.8 documents every option of run, audit and rules" "make failed: no build/hvguard"
fi

# --- make deb, lintian --------------------------------------------------------
deb=
git_before=$(git describe --always --dirty 2>/dev/null)
if out=$(make deb 2>&1); then
	deb=$(ls build/hvguard_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1)
fi
if [ -n "$deb" ] && [ -f "$deb" ]; then
	ok "make deb builds $deb"
else
	nok "make deb builds build/hvguard_VERSION_ARCH.deb" "$(printf '%s' "$out" | tail -4)"
fi

# git describe made Debian-valid, as the Makefile does: 77600c4-dirty ->
# 0~g77600c4+dirty-1, v1.2-3-gabc -> 1.2+3+gabc-1.
deb_version() {
	sed -E 's/^v([0-9])/\1/; s/^([0-9a-f]{7,})(-dirty)?$/0~g\1\2/; s/^([^0-9])/0~\1/; s/-/+/g' <<<"$1" | sed 's/$/-1/'
}
if [ -n "$deb" ]; then
	v=$(dpkg-deb -f "$deb" Version)
	if dpkg --validate-version "$v" 2>/dev/null && { [ "$v" = "$(deb_version "$git_before")" ] ||
		[ "$v" = "$(deb_version "$(git describe --always --dirty)")" ]; }; then
		ok "package version $v: Debian-valid, from git describe $git_before"
	else
		nok "package version: Debian-valid, from git describe $git_before" "Version: $v"
	fi

	lint=$(lintian "$deb" 2>&1 | grep -v 'running with root privileges')
	errors=$(printf '%s\n' "$lint" | grep -c '^E: ')
	printf '%s\n' "$lint" | grep -E '^[EW]: ' | sed 's/^/# lintian: /'
	if [ "$errors" -eq 0 ] && ! printf '%s\n' "$lint" | grep -q '^E\|internal error'; then
		ok "lintian reports no errors ($(printf '%s\n' "$lint" | grep -c '^W: ') warning(s))"
	else
		nok "lintian reports no errors" "$errors error(s): $(printf '%s\n' "$lint" | grep '^E' | head -3)"
	fi

	# Runtime libraries only: each one the binary links, no -dev package, no
	# build tool.
	depends=$(dpkg-deb -f "$deb" Depends)
	echo "# Depends: $depends"
	miss=()
	for p in libbpf1 libyaml-0-2 libjson-c5 libmicrohttpd12 criu libsystemd0 libc6; do
		grep -qE "(^|, )$p( |,|$)" <<<"$depends" || miss+=("$p")
	done
	if [ ${#miss[@]} -eq 0 ] && ! grep -qE -- '-dev|clang|llvm|bpftool' <<<"$depends"; then
		ok "Depends: the runtime libraries, nothing to build with"
	else
		nok "Depends: the runtime libraries, nothing to build with" "missing ${miss[*]:-none}; Depends: $depends"
	fi
	# libelf and zlib come through libbpf1 (hvguard calls neither directly).
	if dpkg-query -W -f='${Depends}' libbpf1 2>/dev/null | grep -q libelf1 &&
		dpkg-query -W -f='${Depends}' libbpf1 | grep -q zlib1g; then
		ok "libelf1 and zlib1g come with libbpf1"
	else
		nok "libelf1 and zlib1g come with libbpf1" "libbpf1 Depends: $(dpkg-query -W -f='${Depends}' libbpf1 2>&1)"
	fi

	check "conffiles lists /etc/hvguard/rules.yaml" \
		sh -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xO ./conffiles | grep -qx /etc/hvguard/rules.yaml"
fi

# --- the package, unpacked into a scratch root ---------------------------------
root=$scratch/root
if [ -n "$deb" ] && dpkg -x "$deb" "$root" 2>/dev/null; then
	ok "dpkg -x unpacks the package"
else
	nok "dpkg -x unpacks the package" "no package, or dpkg -x failed"
fi
hv=$root/usr/sbin/hvguard
for f in usr/sbin/hvguard usr/share/man/man8/hvguard.8.gz etc/hvguard/rules.yaml \
	lib/systemd/system/hvguard.service usr/share/doc/hvguard/copyright \
	usr/share/doc/hvguard/changelog.Debian.gz usr/share/hvguard/prometheus-alerts.yaml \
	usr/share/hvguard/xen-example.yaml usr/share/hvguard/correct-sandboxed-vmm.conf \
	usr/share/hvguard/audit.schema.json usr/share/hvguard/hvguard-dashboard.json; do
	[ -f "$root/$f" ] && ok "package ships /$f" || nok "package ships /$f" "not in $deb"
done
# What operators load into Prometheus and Grafana is what the tests checked.
for src in rules/prometheus-alerts.yaml packaging/grafana/hvguard-dashboard.json; do
	check "package's /usr/share/hvguard/${src##*/} is $src" \
		cmp -s "$src" "$root/usr/share/hvguard/${src##*/}"
done
check "copyright is machine-readable (DEP-5), GPL-2" \
	sh -c "head -1 '$root/usr/share/doc/hvguard/copyright' | grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' &&
	       grep -q '^License: GPL-2$' '$root/usr/share/doc/hvguard/copyright'"

# The binary names the version the package has.
out=$("$hv" version 2>&1)
if [ -n "$deb" ] && [ "$(deb_version "${out#hvguard }")" = "$(dpkg-deb -f "$deb" Version)" ]; then
	ok "packaged hvguard version: $out, the package's version"
else
	nok "packaged hvguard version: the package's version" "'$out' in package ${deb:-none}"
fi
check "packaged rules check /etc/hvguard/rules.yaml" "$hv" rules check "$root/etc/hvguard/rules.yaml"
# The shipped file says what the built-in rules say (comments aside).
strip_yaml() { sed -e 's/[[:space:]]*#.*//' -e '/^[[:space:]]*$/d' "$1"; }
if [ -f "$root/etc/hvguard/rules.yaml" ] &&
	diff <(strip_yaml rules/default.yaml) <(strip_yaml "$root/etc/hvguard/rules.yaml") >/dev/null &&
	grep -q 'This is the file to edit' "$root/etc/hvguard/rules.yaml"; then
	ok "/etc/hvguard/rules.yaml: the built-in rules, headed as the file operators edit"
else
	nok "/etc/hvguard/rules.yaml: the built-in rules, headed as the file operators edit" \
		"differs from rules/default.yaml or lacks the header"
fi

# What a short run must do depends on the host: nothing to watch without KVM
# and Xen (exit 2), a ready line and a summary (exit 0) with either.
if [ -e /dev/kvm ] || [ -e /dev/xen/privcmd ] || [ -e /proc/xen ]; then host_has=1; else host_has=0; fi
echo "# host: $([ $host_has = 1 ] && echo 'KVM or Xen present: expecting a ready line' || echo 'no /dev/kvm, no Xen: expecting exit 2, nothing to watch')"
short_run() { # name cmd...
	local name=$1 out rc
	shift
	out=$(timeout 60 "$@" run --duration 1 --json --no-pin 2>&1)
	rc=$?
	if [ $host_has = 1 ]; then
		if [ $rc -eq 0 ] && grep -q '"type": *"ready"' <<<"$out" && grep -q '"type": *"summary"' <<<"$out"; then
			ok "$name: ready line, summary, exit 0"
		else
			nok "$name: ready line, summary, exit 0" "exit $rc: $(tail -c 300 <<<"$out")"
		fi
	else
		if [ $rc -eq 2 ] && grep -q 'nothing to watch on this host' <<<"$out"; then
			ok "$name: exit 2, nothing to watch on this host"
		else
			nok "$name: exit 2, nothing to watch on this host" "exit $rc: $(tail -c 300 <<<"$out")"
		fi
	fi
}
short_run "packaged run --duration 1" "$hv"

# The same under the unit's capability bounding set (as root, the bounding
# set is what limits a service): the capabilities listed suffice.
unit=$root/lib/systemd/system/hvguard.service
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" 2>/dev/null)
if [ "$(tr ' ' '\n' <<<"$caps" | sort | xargs)" = "$UNIT_CAPS" ]; then
	ok "unit's capability bounding set is exactly: $UNIT_CAPS"
else
	nok "unit's capability bounding set is exactly: $UNIT_CAPS" "CapabilityBoundingSet=$caps"
fi
spec="-all$(for c in $caps; do printf ',+%s' "$(tr 'A-Z' 'a-z' <<<"${c#CAP_}")"; done)"
short_run "packaged run under the unit's capabilities ($spec)" \
	setpriv --bounding-set="$spec" --inh-caps=-all -- "$hv"

# The default rules path: a broken /etc/hvguard/rules.yaml (in a private
# overlay of /etc, never the host's) is what run reads without --rules.
ovl=$scratch/etc-overlay
mkdir -p "$ovl/up/hvguard" "$ovl/work"
printf 'version: 1\nrules:\n  no-such-rule: {}\n' >"$ovl/up/hvguard/rules.yaml"
out=$(unshare -m --propagation private sh -c \
	"mount -t overlay overlay -o lowerdir=/etc,upperdir=$ovl/up,workdir=$ovl/work /etc && exec '$hv' run --duration 1 --no-pin" 2>&1)
rc=$?
if [ $rc -eq 2 ] && grep -q '^Error: /etc/hvguard/rules.yaml:3:3:' <<<"$out"; then
	ok "run without --rules reads /etc/hvguard/rules.yaml (a bad one: exit 2, FILE:LINE:COL)"
else
	nok "run without --rules reads /etc/hvguard/rules.yaml (a bad one: exit 2, FILE:LINE:COL)" "exit $rc: $out"
fi
if "$hv" run --help | grep -q -- '--rules FILE.*/etc/hvguard/rules.yaml'; then
	ok "run --help names /etc/hvguard/rules.yaml as the default"
else
	nok "run --help names /etc/hvguard/rules.yaml as the default" "$("$hv" run --help | grep -A1 -- --rules)"
fi

# sd_notify: READY=1 only once every program is attached. Without KVM and Xen
# the run fails, and systemd must hear nothing; with them, READY=1 (STATUS
# naming the rules) and, at exit, STOPPING=1.
notify=$(python3 - "$hv" "$host_has" "$scratch/notify.sock" <<'EOF' 2>&1
import os, socket, subprocess, sys
hv, has, path = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setblocking(False)
env = dict(os.environ, NOTIFY_SOCKET=path)
p = subprocess.run([hv, "run", "--duration", "1", "--json", "--no-pin"], env=env,
                   capture_output=True, text=True, timeout=60)
msgs = []
while True:
    try:
        msgs.append(s.recv(4096).decode())
    except BlockingIOError:
        break
if has:
    ready = [m for m in msgs if "READY=1" in m]
    good = (p.returncode == 0 and len(ready) == 1 and "STATUS=watching (rules: " in ready[0]
            and any("STOPPING=1" in m for m in msgs)
            and msgs.index(ready[0]) < len(msgs) - 1)
else:
    good = p.returncode == 2 and not msgs
print("ok" if good else "bad: exit %d, notifications %r, stderr %r" % (p.returncode, msgs, p.stderr[-200:]))
EOF
)
if [ "$notify" = ok ]; then
	ok "sd_notify: $([ $host_has = 1 ] && echo 'READY=1 with STATUS, then STOPPING=1' || echo 'nothing sent when there is nothing to watch')"
else
	nok "sd_notify: READY=1 exactly when attached" "$notify"
fi

# --- the unit: systemd-analyze --------------------------------------------------
# verify needs ExecStart= to exist and checks Documentation=man:hvguard(8)
# with man(1): a copy of the packaged unit runs the unpacked binary, and
# MANPATH is the unpacked man directory. No running systemd is needed.
vunit=$scratch/verify/hvguard.service
mkdir -p "$scratch/verify"
if [ -f "$unit" ]; then
	sed "s|^ExecStart=/usr/sbin/hvguard|ExecStart=$hv|" "$unit" >"$vunit"
	out=$(MANPATH=$root/usr/share/man systemd-analyze verify "$vunit" 2>&1)
	if [ $? -eq 0 ] && [ -z "$out" ]; then
		ok "systemd-analyze verify hvguard.service"
	else
		nok "systemd-analyze verify hvguard.service" "$out"
	fi
	grep -q '^ExecStart=/usr/sbin/hvguard run --log journald --reset-pins=old-layout$' "$unit" && grep -q '^Type=notify$' "$unit" &&
		grep -q '^Restart=on-failure$' "$unit" && ok "unit: Type=notify, ExecStart=/usr/sbin/hvguard run --log journald --reset-pins=old-layout, Restart=on-failure" ||
		nok "unit: Type=notify, ExecStart=/usr/sbin/hvguard run --log journald --reset-pins=old-layout, Restart=on-failure" "$(grep -E '^(Type|ExecStart|Restart)=' "$unit")"
	# systemctl reload: SIGHUP, which reopens --output and reloads the rules.
	grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit" && ok "unit: ExecReload sends SIGHUP" ||
		nok "unit: ExecReload sends SIGHUP" "$(grep -E '^ExecReload=' "$unit")"

	sec=$(systemd-analyze security --offline=yes "$vunit" 2>&1)
	score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$sec")
	echo "# systemd-analyze security --offline=yes: exposure $score (threshold: below $EXPOSURE_MAX)"
	grep '✗' <<<"$sec" | sed -E 's/^✗ ([^ ]+).*[[:space:]]([0-9.]+)$/# exposed: \1 \2/'
	if [ -n "$score" ] && awk -v s="$score" -v m="$EXPOSURE_MAX" 'BEGIN { exit !(s < m) }'; then
		ok "systemd-analyze security: exposure $score below $EXPOSURE_MAX"
	else
		nok "systemd-analyze security: exposure below $EXPOSURE_MAX" "${score:-no score}: $(tail -2 <<<"$sec")"
	fi

	# The drop-in for correcting sandboxed VMMs turns off every setting
	# systemd implements with seccomp, and nothing else.
	mkdir -p "$scratch/verify/hvguard.service.d"
	cp "$root/usr/share/hvguard/correct-sandboxed-vmm.conf" "$scratch/verify/hvguard.service.d/" 2>/dev/null
	out=$(MANPATH=$root/usr/share/man systemd-analyze verify "$vunit" 2>&1)
	[ $? -eq 0 ] && [ -z "$out" ] && ok "systemd-analyze verify with correct-sandboxed-vmm.conf" ||
		nok "systemd-analyze verify with correct-sandboxed-vmm.conf" "$out"
	sec2=$(systemd-analyze security --offline=yes "$vunit" 2>&1)
	still=$(grep '✓' <<<"$sec2" | grep -oE '^✓ (SystemCall[A-Za-z]*|Restrict[A-Za-z]*|LockPersonality|MemoryDenyWriteExecute|ProtectHostname|ProtectKernelModules|ProtectClock|ProtectKernelLogs)=' | sort -u | xargs)
	kept=$(grep -cE '^✓ (NoNewPrivileges=|ProtectSystem=|ProtectHome=|PrivateTmp=|CapabilityBoundingSet=~CAP_SYS_MODULE )' <<<"$sec2")
	if [ -z "$still" ] && [ "$kept" -eq 5 ]; then
		ok "correct-sandboxed-vmm.conf turns off every seccomp-based setting, keeps the rest"
	else
		nok "correct-sandboxed-vmm.conf turns off every seccomp-based setting, keeps the rest" \
			"still on: ${still:-none}; kept $kept of 5 non-seccomp settings"
	fi
	rm -rf "$scratch/verify/hvguard.service.d"
else
	for t in "systemd-analyze verify hvguard.service" "systemd-analyze security: exposure below $EXPOSURE_MAX"; do
		nok "$t" "no unit in the package"
	done
fi

# --- make install / uninstall into a scratch DESTDIR -----------------------------
d=$scratch/destdir
if out=$(make -s install DESTDIR="$d" 2>&1); then ok "make install DESTDIR=..."; else nok "make install DESTDIR=..." "$out"; fi
for f in usr/sbin/hvguard usr/share/man/man8/hvguard.8.gz etc/hvguard/rules.yaml \
	lib/systemd/system/hvguard.service usr/share/hvguard/prometheus-alerts.yaml \
	usr/share/hvguard/xen-example.yaml usr/share/hvguard/correct-sandboxed-vmm.conf \
	usr/share/hvguard/audit.schema.json usr/share/hvguard/hvguard-dashboard.json; do
	[ -f "$d/$f" ] && ok "make install puts /$f" || nok "make install puts /$f" "missing under DESTDIR"
done
[ -x "$d/usr/sbin/hvguard" ] && "$d/usr/sbin/hvguard" version >/dev/null 2>&1 &&
	ok "installed /usr/sbin/hvguard runs" || nok "installed /usr/sbin/hvguard runs" "not executable"
out=$(MANWIDTH=80 man --warnings -l "$d/usr/share/man/man8/hvguard.8.gz" 2>&1 >/dev/null)
[ -f "$d/usr/share/man/man8/hvguard.8.gz" ] && [ -z "$out" ] && ok "installed hvguard.8.gz renders without warnings" ||
	nok "installed hvguard.8.gz renders without warnings" "${out:-missing}"

# A second install keeps the operator's edit.
if [ -f "$d/etc/hvguard/rules.yaml" ]; then
	sed -i 's/^    severity: critical$/    severity: warning/' "$d/etc/hvguard/rules.yaml"
	echo "# edited by the operator" >>"$d/etc/hvguard/rules.yaml"
	cp "$d/etc/hvguard/rules.yaml" "$scratch/edited.yaml"
	make -s install DESTDIR="$d" >/dev/null 2>&1
	if cmp -s "$scratch/edited.yaml" "$d/etc/hvguard/rules.yaml"; then
		ok "a second make install keeps an edited /etc/hvguard/rules.yaml"
	else
		nok "a second make install keeps an edited /etc/hvguard/rules.yaml" "overwritten"
	fi
else
	nok "a second make install keeps an edited /etc/hvguard/rules.yaml" "no rules.yaml installed"
fi

if out=$(make -s uninstall DESTDIR="$d" 2>&1); then
	left=$(cd "$d" && find . -type f | sort | xargs)
	if [ "$left" = "./etc/hvguard/rules.yaml" ] && cmp -s "$scratch/edited.yaml" "$d/etc/hvguard/rules.yaml"; then
		ok "make uninstall removes everything but /etc/hvguard/rules.yaml"
	else
		nok "make uninstall removes everything but /etc/hvguard/rules.yaml" "left: $left"
	fi
else
	nok "make uninstall removes everything but /etc/hvguard/rules.yaml" "$out"
fi

# PREFIX moves everything but /etc, and the unit follows the binary.
l=$scratch/local
make -s install DESTDIR="$l" PREFIX=/usr/local >/dev/null 2>&1
if [ -x "$l/usr/local/sbin/hvguard" ] && [ -f "$l/usr/local/share/man/man8/hvguard.8.gz" ] &&
	[ -f "$l/usr/local/share/hvguard/xen-example.yaml" ] && [ -f "$l/etc/hvguard/rules.yaml" ] &&
	grep -q '^ExecStart=/usr/local/sbin/hvguard run --log journald --reset-pins=old-layout$' "$l/usr/local/lib/systemd/system/hvguard.service" 2>/dev/null; then
	ok "make install PREFIX=/usr/local: sbin, man, share, unit under /usr/local, ExecStart follows"
else
	nok "make install PREFIX=/usr/local: sbin, man, share, unit under /usr/local, ExecStart follows" \
		"$(cd "$l" 2>/dev/null && find . -type f -printf "%p ")"
fi

[ "$tools_ok" = 1 ] || echo "# some tools are missing: make test-deps installs them"
echo "# end of stage"
[ "$failed" -eq 0 ]
