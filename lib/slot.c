#include "slot.h"

#include "banned.h"

uint16_t pl_crc16(const char *buf, size_t n)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < n; i++) {
		crc ^= (uint16_t)((unsigned char)buf[i] << 8);
		for (int bit = 0; bit < 8; bit++)
			crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) :
					     (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned pl_slot(const char *key, size_t n)
{
	size_t open, close;

	for (open = 0; open < n && key[open] != '{'; open++)
		;
	for (close = open + 1; close < n && key[close] != '}'; close++)
		;
	/* A tag needs a '{', a later '}', and something between them. */
	if (open < n && close < n && close > open + 1)
		return pl_crc16(key + open + 1, close - open - 1) % PL_SLOTS;
	return pl_crc16(key, n) % PL_SLOTS;
}
