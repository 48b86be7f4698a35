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

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))
USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUTPUT)/user/%.o,$(USER_SRCS))
LIB_OBJS  := $(filter-out $(OUTPUT)/user/main.o,$(USER_OBJS))
HEADERS   := $(wildcard include/hvguard/*.h user/*.h bpf/*.h) rules/default.yaml

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%,$(UNIT_SRCS))
SAN_BINS  := $(patsubst tests/unit/%.c,$(OUTPUT)/asan/tests/%,$(UNIT_SRCS))
TOOL_SRCS := $(wildcard tests/vmm/*.c tests/xen/*.c bench/*.c)
TOOL_BINS := $(foreach s,$(TOOL_SRCS),$(OUTPUT)/tests/$(basename $(notdir $(s))))
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
.PHONY: all deps test-deps run check check-unit check-xen bench bench-xen demo vmlinux clean format \
	fuzz

all: $(OUTPUT)/hvguard

deps:
	$(Q)scripts/install-deps.sh

test-deps:
	$(Q)scripts/install-deps.sh --tests

$(OUTPUT) $(OUTPUT)/user $(OUTPUT)/tests $(OUTPUT)/asan/user $(OUTPUT)/asan/tests:
	$(Q)mkdir -p $@

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c $(HEADERS) $(VMLINUX) | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

$(OUTPUT)/user/%.o: user/%.c $(HEADERS) $(SKELS) | $(OUTPUT)/user
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(OUTPUT)/hvguard: $(USER_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LIBS) -o $@

$(OUTPUT)/libhvguard.a: $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(OUTPUT)/tests/test_%: tests/unit/test_%.c $(OUTPUT)/libhvguard.a $(HEADERS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< $(OUTPUT)/libhvguard.a $(LIBS) -lcmocka -o $@

# Sanitizer builds of the userspace and the unit tests (ASan + UBSan).
$(OUTPUT)/asan/user/%.o: user/%.c $(HEADERS) $(SKELS) | $(OUTPUT)/asan/user
	$(call msg,CC-SAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -c $< -o $@

$(OUTPUT)/asan/libhvguard.a: $(patsubst $(OUTPUT)/%,$(OUTPUT)/asan/%,$(LIB_OBJS))
	$(Q)$(AR) rcs $@ $^

$(OUTPUT)/asan/tests/test_%: tests/unit/test_%.c $(OUTPUT)/asan/libhvguard.a $(HEADERS) | $(OUTPUT)/asan/tests
	$(call msg,CC-SAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) $< $(OUTPUT)/asan/libhvguard.a $(LIBS) -lcmocka -o $@

$(OUTPUT)/asan/hvguard: $(patsubst $(OUTPUT)/%,$(OUTPUT)/asan/%,$(USER_OBJS))
	$(call msg,LINK-SAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) $^ $(LIBS) -o $@

# Test and benchmark helpers: one C file, one program.
define tool_rule
$(OUTPUT)/tests/$(basename $(notdir $(1))): $(1) $(HEADERS) | $(OUTPUT)/tests
	$$(call msg,CC,$$@)
	$$(Q)$$(CC) $$(CFLAGS) $$< -lpthread -o $$@
endef
$(foreach s,$(TOOL_SRCS),$(eval $(call tool_rule,$(s))))

# libFuzzer target for the rules parser (clang; runtime: libclang-rt-14-dev).
FUZZ_SECONDS ?= 600
FUZZ_FLAGS   := -g -O1 -std=gnu11 $(WARN) -Iinclude -Iuser -D_GNU_SOURCE \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SRCS    := tests/fuzz/fuzz_rules.c user/rules.c user/rules_write.c

$(OUTPUT)/fuzz/fuzz_rules: $(FUZZ_SRCS) $(HEADERS)
	$(call msg,CC-FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_FLAGS) $(FUZZ_SRCS) -lyaml -o $@

tools: $(TOOL_BINS)
unit: $(UNIT_BINS) $(SAN_BINS) $(OUTPUT)/asan/hvguard $(OUTPUT)/fuzz/fuzz_rules

# Fuzz the rules parser for FUZZ_SECONDS (the unit stage does 60 s).
fuzz: $(OUTPUT)/fuzz/fuzz_rules
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

# Per-call cost of the Xen hooks in a dom0 under QEMU TCG (one boot).
bench-xen: test-deps
	$(Q)$(MAKE) --no-print-directory all tools
	$(Q)tests/xen/run.sh bench

demo: deps test-deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/mount-fs.sh
	$(Q)tests/e2e/demo.sh

# Regenerate the vendored vmlinux.h from the running kernel's BTF.
vmlinux:
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX)

format:
	clang-format -i $(wildcard bpf/*.c bpf/*.h user/*.c user/*.h include/hvguard/*.h tests/*/*.c)

clean:
	rm -rf $(OUTPUT)
