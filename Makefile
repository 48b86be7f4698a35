# hvguard: clang -target bpf -> .bpf.o -> bpftool gen skeleton -> .skel.h -> link.
# Quiet by default, one word per step; `make V=1` prints the full commands.

OUTPUT  ?= build
CLANG   ?= clang
CC      ?= gcc
BPFTOOL ?= bpftool
ARCH    ?= x86
VMLINUX := vmlinux/$(ARCH)/vmlinux.h
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

WARN      := -Wall -Wextra -Werror
CFLAGS    ?= -g -O2
CFLAGS    += -std=gnu11 $(WARN) -Iinclude -I$(OUTPUT) -Iuser -D_GNU_SOURCE \
	     -DHVGUARD_VERSION='"$(VERSION)"'
BPF_CFLAGS := -std=gnu11 -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) $(WARN) \
	      -Wno-unused-parameter -Wno-missing-field-initializers \
	      -I$(dir $(VMLINUX)) -Iinclude -Ibpf
LIBS      := -lbpf -lelf -lz -lyaml -ljson-c -lmicrohttpd -lcompel -lsystemd -lpthread
# Every compile writes the headers it read to TARGET.d (build/user/run.o.d,
# build/tests/test_rules.d): a header change rebuilds only what includes it,
# and -MP keeps a deleted header from breaking the build.
DEPFLAGS   = -MMD -MP -MF $@.d

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))
USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(USER_SRCS))
LIB_OBJS  := $(filter-out $(OUTPUT)/user/main.o,$(USER_OBJS))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%,$(UNIT_SRCS))
SAN_BINS  := $(patsubst tests/unit/%.c,$(OUTPUT)/asan/tests/%,$(UNIT_SRCS))
TOOL_SRCS := $(wildcard tests/vmm/*.c tests/xen/*.c)
TOOL_BINS := $(foreach s,$(TOOL_SRCS),$(OUTPUT)/tests/$(basename $(notdir $(s))))
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(patsubst bench/%.c,$(OUTPUT)/bench/%,$(BENCH_SRCS))
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
.SECONDARY: $(BPF_OBJS) $(SKELS)
.PHONY: all deps test-deps tools unit fuzz run check check-unit check-xen bench bench-stats bench-xen demo \
	demo-guest vmlinux format format-check clean install uninstall deb FORCE

all: $(OUTPUT)/hvguard

deps:
	$(Q)scripts/install-deps.sh

test-deps:
	$(Q)scripts/install-deps.sh --tests

$(OUTPUT) $(OUTPUT)/user $(OUTPUT)/tests $(OUTPUT)/bench $(OUTPUT)/asan/user $(OUTPUT)/asan/tests \
$(OUTPUT)/fuzz $(OUTPUT)/fuzz/user:
	$(Q)mkdir -p $@

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c $(VMLINUX) | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

# The skeletons are generated headers: they must exist before the first
# compile (order-only); after that the .d files say who includes them.
$(OUTPUT)/user/%.o: user/%.c | $(OUTPUT)/user $(SKELS)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(OUTPUT)/hvguard: $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LIBS) -o $@

$(OUTPUT)/libhvguard.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(OUTPUT)/tests/test_%: tests/unit/test_%.c $(OUTPUT)/libhvguard.a | $(OUTPUT)/tests $(SKELS)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) $< $(OUTPUT)/libhvguard.a $(LIBS) -lcmocka -o $@

# Sanitizer builds of the userspace and the unit tests (ASan + UBSan).
$(OUTPUT)/asan/user/%.o: user/%.c | $(OUTPUT)/asan/user $(SKELS)
	$(call msg,CC-SAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) $(DEPFLAGS) -c $< -o $@

$(OUTPUT)/asan/libhvguard.a: $(patsubst $(OUTPUT)/%,$(OUTPUT)/asan/%,$(LIB_OBJS))
	$(Q)$(AR) rcs $@ $^

$(OUTPUT)/asan/tests/test_%: tests/unit/test_%.c $(OUTPUT)/asan/libhvguard.a | $(OUTPUT)/asan/tests $(SKELS)
	$(call msg,CC-SAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) $(DEPFLAGS) $< $(OUTPUT)/asan/libhvguard.a $(LIBS) -lcmocka -o $@

$(OUTPUT)/asan/hvguard: $(patsubst $(OUTPUT)/%,$(OUTPUT)/asan/%,$(USER_OBJS))
	$(call msg,LINK-SAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) $^ $(LIBS) -o $@

# Test helpers (build/tests) and benchmark tools (build/bench, beside
# bench/run's results): one C file, one program.
define tool_rule
$(2)/$(basename $(notdir $(1))): $(1) | $(2)
	$$(call msg,CC,$$@)
	$$(Q)$$(CC) $$(CFLAGS) $$(DEPFLAGS) $$< -lpthread -o $$@
endef
$(foreach s,$(TOOL_SRCS),$(eval $(call tool_rule,$(s),$(OUTPUT)/tests)))
$(foreach s,$(BENCH_SRCS),$(eval $(call tool_rule,$(s),$(OUTPUT)/bench)))

# libFuzzer targets: the rules parser and the departure/arrival record reader
# (clang; runtime: libclang-rt-14-dev).
FUZZ_SECONDS ?= 600
FUZZ_FLAGS   := -g -O1 -std=gnu11 $(WARN) -Iinclude -Iuser -D_GNU_SOURCE \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# One object per source: a dependency file describes one compile.
FUZZ_OBJS    := $(OUTPUT)/fuzz/fuzz_rules.o $(OUTPUT)/fuzz/user/rules.o \
		$(OUTPUT)/fuzz/user/rules_write.o
# The same for the record reader (hvguard migrations).
FUZZ_MIG_OBJS := $(OUTPUT)/fuzz/fuzz_migrations.o $(OUTPUT)/fuzz/user/migration.o \
		 $(OUTPUT)/fuzz/user/migration_json.o

$(OUTPUT)/fuzz/%.o: tests/fuzz/%.c | $(OUTPUT)/fuzz
	$(call msg,CC-FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) $(DEPFLAGS) -c $< -o $@

$(OUTPUT)/fuzz/user/%.o: user/%.c | $(OUTPUT)/fuzz/user
	$(call msg,CC-FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) $(DEPFLAGS) -c $< -o $@

$(OUTPUT)/fuzz/fuzz_rules: $(FUZZ_OBJS)
	$(call msg,LINK-FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) $^ -lyaml -o $@

$(OUTPUT)/fuzz/fuzz_migrations: $(FUZZ_MIG_OBJS)
	$(call msg,LINK-FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) $^ -ljson-c -o $@

# rules.c embeds the built-in rules with .incbin, which -MMD does not see.
$(OUTPUT)/user/rules.o $(OUTPUT)/asan/user/rules.o $(OUTPUT)/fuzz/user/rules.o: rules/default.yaml

# What the compiles above wrote (absent before the first build).
DEPS := $(BPF_OBJS) $(USER_OBJS) $(patsubst $(OUTPUT)/%,$(OUTPUT)/asan/%,$(USER_OBJS)) \
	$(UNIT_BINS) $(SAN_BINS) $(TOOL_BINS) $(BENCH_BINS) $(FUZZ_OBJS) $(FUZZ_MIG_OBJS)
DEPS += $(OUTPUT)/tests/rgclock
-include $(addsuffix .d,$(DEPS))
# A target that exists without its .d file was built by a Makefile without
# -MMD (an older checkout's build/): what it read is unknown, so it is
# built again once, or a header change would never reach it.
$(foreach t,$(DEPS),$(if $(wildcard $(t)),$(if $(wildcard $(t).d),,$(eval $(t): FORCE))))

# The test stages' helpers, and the benchmark's tools (built with them so
# that `make check` compiles every C file).
tools: $(TOOL_BINS) $(BENCH_BINS) $(OUTPUT)/tests/rgclock $(OUTPUT)/tests/clock-bios.code

# The qemu stage's clock-reporting BIOS (tests/qemu/guestclock.py makes the
# 64 KiB image around it): real-mode code, assembled here.
$(OUTPUT)/tests/clock-bios.code: tests/qemu/clock-bios.S | $(OUTPUT)/tests
	$(call msg,AS,$@)
	$(Q)as --32 -o $@.o $<
	$(Q)objcopy -O binary -j .text $@.o $@
	$(Q)rm -f $@.o

# The realguest stage's clock watcher runs as a Linux guest's init: static.
$(OUTPUT)/tests/rgclock: tests/realguest/rgclock.c | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -static $< -o $@

unit: $(UNIT_BINS) $(SAN_BINS) $(OUTPUT)/asan/hvguard $(OUTPUT)/fuzz/fuzz_rules \
	$(OUTPUT)/fuzz/fuzz_migrations

# Fuzz each parser for FUZZ_SECONDS (the unit stage does 60 s each).
fuzz: $(OUTPUT)/fuzz/fuzz_rules $(OUTPUT)/fuzz/fuzz_migrations
	$(Q)tests/fuzz/run.sh $(FUZZ_SECONDS)

# The daemon, with the built-in rules; installs what is missing and mounts
# tracefs/bpffs first.
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/mount-fs.sh
	$(OUTPUT)/hvguard run $(ARGS)

# The whole test suite: unit tests (plain and sanitized), the mini VMM on
# /dev/kvm, real QEMU, real Xen under QEMU TCG.
check: test-deps
	$(Q)$(MAKE) --no-print-directory all tools unit
	$(Q)scripts/mount-fs.sh
	$(Q)tests/run all

check-unit: test-deps
	$(Q)$(MAKE) --no-print-directory all unit
	$(Q)tests/run unit

check-xen: test-deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)tests/run xen

bench: test-deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)scripts/mount-fs.sh
	$(Q)bench/run

# What the kernel's BPF run-time stats (on while hvguard's exporter runs)
# add to every BPF program's run: needs no /dev/kvm.
bench-stats: test-deps
	$(Q)$(MAKE) --no-print-directory tools
	$(Q)scripts/mount-fs.sh
	$(Q)CONFIGS="none rawtp rawtp-stats" LAT_COUNT=0 FREEZE_CYCLES=0 bench/run

# Per-call cost of the Xen hooks in a dom0 under QEMU TCG (one boot).
bench-xen: test-deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)tests/xen/run.sh bench

demo: deps test-deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/mount-fs.sh
	$(Q)tests/qemu/demo.sh

# A real Linux guest paused with and without hvguard: what it saw, in a table.
demo-guest: deps test-deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)tests/realguest/demo.sh

# Regenerate the vendored vmlinux.h from the running kernel's BTF.
vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX)

# The project's own C (not the vendored vmlinux.h), as .clang-format says;
# Debian 12's clang-format (14) is the reference: others format differently.
FORMAT_SRCS := $(wildcard bpf/*.c bpf/*.h user/*.c user/*.h include/hvguard/*.h \
		tests/*/*.c bench/*.c)

format:
	clang-format -i $(FORMAT_SRCS)

# Fails naming every file `make format` would change, with the start of the
# change it would make.
format-check:
	$(call msg,FORMAT,$(words $(FORMAT_SRCS)) files)
	$(Q)bad=; for f in $(FORMAT_SRCS); do \
		clang-format --dry-run -Werror "$$f" 2>/dev/null && continue; \
		bad="$$bad $$f"; clang-format "$$f" | diff -u "$$f" - | head -n 20 >&2; \
	done; \
	[ -z "$$bad" ] || { echo "not clang-formatted (make format fixes them):$$bad" >&2; exit 1; }

clean:
	rm -rf $(OUTPUT)

# --- Installing, and a Debian package -----------------------------------------
# `make install` (PREFIX=/usr, DESTDIR= for staging), `make uninstall`,
# `make deb` -> build/hvguard_VERSION_ARCH.deb (dpkg-deb, no debhelper).
# /etc/hvguard/rules.yaml is the operators' file: installed once, never
# overwritten, left in place by uninstall (a conffile in the package).
PREFIX  ?= /usr
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/hvguard
# Debian keeps system units in /lib/systemd/system when PREFIX is /usr.
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
ETCDIR  := /etc/hvguard
SHARE_FILES := rules/prometheus-alerts.yaml rules/xen-example.yaml \
	       packaging/correct-sandboxed-vmm.conf docs/audit.schema.json \
	       packaging/grafana/hvguard-dashboard.json
DEB_ARCH    := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
# git describe made Debian-valid: 77600c4-dirty -> 0~g77600c4+dirty-1.
DEB_VERSION := $(shell echo '$(VERSION)' | sed -E 's/^v([0-9])/\1/; \
	s/^([0-9a-f]{7,})(-dirty)?$$/0~g\1\2/; s/^([^0-9])/0~\1/; s/-/+/g')-1
DEB_MAINTAINER ?= $(shell git log -1 --format='%an <%ae>' 2>/dev/null)
DEB       := $(OUTPUT)/hvguard_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_ROOT  := $(OUTPUT)/deb/debian/hvguard

# The objects that print HVGUARD_VERSION are rebuilt when git describe
# changes, so a package never carries a binary that names another version.
$(OUTPUT)/version: FORCE | $(OUTPUT)
	$(Q)echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
$(patsubst user/%.c,$(OUTPUT)/user/%.o,$(shell grep -l HVGUARD_VERSION $(USER_SRCS))): $(OUTPUT)/version

# The shipped /etc/hvguard/rules.yaml: the built-in rules under a header that
# says where they are used, without default.yaml's first comment paragraph.
$(OUTPUT)/rules.yaml: rules/default.yaml packaging/rules-header.yaml | $(OUTPUT)
	$(call msg,GEN,$@)
	$(Q){ cat packaging/rules-header.yaml; \
	      awk 'skip && $$0 == "#" { skip = 0; next } !skip' skip=1 rules/default.yaml; } > $@

$(OUTPUT)/hvguard.8.gz: docs/hvguard.8 | $(OUTPUT)
	$(call msg,GZIP,$@)
	$(Q)gzip -9n < $< > $@

# The unit names the installed paths (they differ from /usr when PREFIX does).
install: $(OUTPUT)/hvguard $(OUTPUT)/rules.yaml $(OUTPUT)/hvguard.8.gz
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -D -m 0755 $(OUTPUT)/hvguard $(DESTDIR)$(SBINDIR)/hvguard
	$(Q)install -D -m 0644 $(OUTPUT)/hvguard.8.gz $(DESTDIR)$(MANDIR)/man8/hvguard.8.gz
	$(Q)install -d -m 0755 $(DESTDIR)$(UNITDIR)
	$(Q)sed -e 's|/usr/sbin/hvguard|$(SBINDIR)/hvguard|' -e 's|/usr/share/hvguard/|$(DATADIR)/|' \
		packaging/hvguard.service > $(DESTDIR)$(UNITDIR)/hvguard.service
	$(Q)chmod 0644 $(DESTDIR)$(UNITDIR)/hvguard.service
	$(Q)install -d -m 0755 $(DESTDIR)$(DATADIR)
	$(Q)install -m 0644 $(SHARE_FILES) $(DESTDIR)$(DATADIR)/
	$(Q)install -d -m 0755 $(DESTDIR)$(ETCDIR)
	$(Q)if [ -e $(DESTDIR)$(ETCDIR)/rules.yaml ]; then \
		echo "  KEPT     $(DESTDIR)$(ETCDIR)/rules.yaml (yours; the shipped one is $(DATADIR)/rules.yaml.dist)"; \
		install -m 0644 $(OUTPUT)/rules.yaml $(DESTDIR)$(DATADIR)/rules.yaml.dist; \
	else \
		install -m 0644 $(OUTPUT)/rules.yaml $(DESTDIR)$(ETCDIR)/rules.yaml; \
	fi

uninstall:
	$(call msg,REMOVE,$(DESTDIR)$(PREFIX))
	$(Q)rm -f $(DESTDIR)$(SBINDIR)/hvguard $(DESTDIR)$(MANDIR)/man8/hvguard.8.gz \
		$(DESTDIR)$(UNITDIR)/hvguard.service $(DESTDIR)$(DATADIR)/rules.yaml.dist \
		$(addprefix $(DESTDIR)$(DATADIR)/,$(notdir $(SHARE_FILES)))
	$(Q)rmdir $(DESTDIR)$(DATADIR) 2>/dev/null || true
	$(Q)[ ! -e $(DESTDIR)$(ETCDIR)/rules.yaml ] || \
		echo "  KEPT     $(DESTDIR)$(ETCDIR)/rules.yaml (remove it yourself if you want it gone)"

# Depends: computed by dpkg-shlibdeps from the binary (runtime libraries only);
# criu ships libcompel without shlibs information, packaging/shlibs.local
# supplies it.
deb: $(OUTPUT)/hvguard $(OUTPUT)/rules.yaml $(OUTPUT)/hvguard.8.gz
	$(call msg,DEB,$(DEB))
	$(Q)rm -rf $(OUTPUT)/deb $(OUTPUT)/hvguard_*.deb
	$(Q)$(MAKE) --no-print-directory install Q=@ msg= PREFIX=/usr DESTDIR=$(abspath $(DEB_ROOT)) >/dev/null
	$(Q)strip --remove-section=.comment --remove-section=.note --strip-unneeded \
		$(DEB_ROOT)/usr/sbin/hvguard
	$(Q)install -D -m 0644 packaging/copyright $(DEB_ROOT)/usr/share/doc/hvguard/copyright
	$(Q)printf 'hvguard (%s) unstable; urgency=medium\n\n  * Built from git %s.\n\n -- %s  %s\n' \
		'$(DEB_VERSION)' '$(VERSION)' '$(DEB_MAINTAINER)' \
		"$$(git log -1 --format=%cD 2>/dev/null || date -R)" \
		| gzip -9n > $(DEB_ROOT)/usr/share/doc/hvguard/changelog.Debian.gz
	$(Q)install -d -m 0755 $(DEB_ROOT)/DEBIAN
	$(Q)printf 'Source: hvguard\n\nPackage: hvguard\nArchitecture: any\n' > $(OUTPUT)/deb/debian/control
	$(Q)cp packaging/shlibs.local $(OUTPUT)/deb/debian/shlibs.local
	$(Q)cd $(OUTPUT)/deb && dpkg-shlibdeps -O -e debian/hvguard/usr/sbin/hvguard 2>shlibdeps.err \
		| sed -n 's/^shlibs:Depends=//p' > depends || { cat shlibdeps.err >&2; exit 1; }
	$(Q)[ -s $(OUTPUT)/deb/depends ] || { echo "dpkg-shlibdeps gave no Depends" >&2; exit 1; }
	$(Q)sed -e 's|@VERSION@|$(DEB_VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
		-e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' \
		-e "s|@DEPENDS@|$$(cat $(OUTPUT)/deb/depends)|" \
		-e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)|" \
		packaging/debian/control > $(DEB_ROOT)/DEBIAN/control
	$(Q)install -m 0644 packaging/debian/conffiles $(DEB_ROOT)/DEBIAN/conffiles
	$(Q)install -m 0755 packaging/debian/postinst packaging/debian/prerm \
		packaging/debian/postrm $(DEB_ROOT)/DEBIAN/
	$(Q)cd $(DEB_ROOT) && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' \
		| LC_ALL=C sort -z | xargs -0 md5sum > DEBIAN/md5sums
	$(Q)dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(DEB) >/dev/null
