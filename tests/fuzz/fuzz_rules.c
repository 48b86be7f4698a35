// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the rules parser (`make fuzz`; 60 s in the unit
 * stage). Beyond "no crash, no leak, no undefined behaviour" it checks what
 * the parser promises: a refusal names FILE:LINE:COL, and accepted rules
 * print (`rules show`) as a file that parses back and prints the same.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *show(const struct hv_rules *r, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f || hv_rules_write(r, f))
		abort();
	fclose(f);
	return buf;
}

static void check_round_trip(const struct hv_rules *r)
{
	char err[512], *text, *again_text;
	struct hv_rules *again;
	size_t len, again_len;

	text = show(r, &len);
	again = hv_rules_parse(text, len, "shown.yaml", err, sizeof(err));
	if (!again) {
		fprintf(stderr, "rules show printed what does not parse: %s\n%s", err, text);
		abort();
	}
	again_text = show(again, &again_len);
	if (again_len != len || memcmp(text, again_text, len)) {
		fprintf(stderr, "rules show of rules show differs:\n%s---\n%s", text, again_text);
		abort();
	}
	free(again_text);
	free(text);
	hv_rules_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	struct hv_rules *r;
	unsigned line, col;

	r = hv_rules_parse((const char *)data, size, "fuzz.yaml", err, sizeof(err));
	if (!r) {
		if (sscanf(err, "fuzz.yaml:%u:%u: ", &line, &col) != 2 || !line || !col) {
			fprintf(stderr, "a refusal without FILE:LINE:COL: '%s'\n", err);
			abort();
		}
		return 0;
	}
	check_round_trip(r);
	hv_rules_free(r);
	return 0;
}
