# Builds the libFuzzer targets of tests/fuzz/ with clang, apart from the
# main (gcc) build: `make fuzz` runs this with the flags configure found.
#
#   make -f tests/fuzz/fuzz.mk top_srcdir=SRC O=OUTDIR CC=clang \
#        DEPS_CFLAGS='...' DEPS_LIBS='...'
#
# The code under test is compiled with coverage (fuzzer-no-link), ASan and
# UBSan; any UBSan report aborts. Each target links libFuzzer's main.

top_srcdir ?= .
O ?= tests/fuzz
CC ?= clang
SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
CFLAGS = -std=c11 -g -O1 -Wall -Wextra -Wno-unused-parameter \
	-D_GNU_SOURCE -DPL_SYSCONFDIR='"/etc"' -DPL_SQLDIR='"/nonexistent"' \
	-iquote $(top_srcdir)/lib -iquote $(top_srcdir)/fcgi \
	-iquote $(top_srcdir)/relay -iquote $(top_srcdir)/notify \
	-iquote $(top_srcdir)/tests/fuzz $(DEPS_CFLAGS)

LIB_SRC = $(wildcard $(top_srcdir)/lib/*.c)
FCGI_SRC = $(filter-out %/main.c,$(wildcard $(top_srcdir)/fcgi/*.c))
NOTIFY_SRC = $(addprefix $(top_srcdir)/notify/,http2.c apns.c fcm.c)
RELAY_SRC = $(top_srcdir)/relay/frame.c

TARGETS = fuzz_config fuzz_frame fuzz_request fuzz_push fuzz_attachment
all: $(addprefix $(O)/,$(TARGETS))

# Objects live under $(O)/obj, mirroring the source tree.
obj = $(patsubst $(top_srcdir)/%.c,$(O)/obj/%.o,$(1))

$(O)/obj/%.o: $(top_srcdir)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(O)/obj/libparley-fuzz.a: $(call obj,$(LIB_SRC))
	rm -f $@ && ar rcs $@ $^

COMMON = $(call obj,$(top_srcdir)/tests/fuzz/fuzz.c) $(O)/obj/libparley-fuzz.a
LINK = $(CC) $(SAN) -fsanitize=fuzzer -o $@ $^ $(DEPS_LIBS)

$(O)/fuzz_config: $(call obj,$(top_srcdir)/tests/fuzz/fuzz_config.c) $(COMMON)
	$(LINK)
$(O)/fuzz_frame: $(call obj,$(top_srcdir)/tests/fuzz/fuzz_frame.c $(RELAY_SRC)) $(COMMON)
	$(LINK)
$(O)/fuzz_request: $(call obj,$(top_srcdir)/tests/fuzz/fuzz_request.c $(FCGI_SRC)) $(COMMON)
	$(LINK)
$(O)/fuzz_push: $(call obj,$(top_srcdir)/tests/fuzz/fuzz_push.c $(NOTIFY_SRC)) $(COMMON)
	$(LINK)
$(O)/fuzz_attachment: $(call obj,$(top_srcdir)/tests/fuzz/fuzz_attachment.c) $(COMMON)
	$(LINK)

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
.PHONY: all
