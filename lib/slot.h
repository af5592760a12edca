/*
 * slot: the Redis Cluster key slot of a key, as the Redis Cluster
 * specification defines it: CRC16 (XMODEM: polynomial 0x1021, initial 0) of
 * the key modulo 16384, where a key holding "{...}" with at least one
 * character between the first '{' and the next '}' hashes only that part
 * (its hash tag), so keys that share a tag share a slot.
 */
#ifndef PL_SLOT_H
#define PL_SLOT_H

#include <stddef.h>
#include <stdint.h>

#define PL_SLOTS 16384

/* CRC16/XMODEM of n bytes. */
uint16_t pl_crc16(const char *buf, size_t n);

/* The slot of an n-byte key (0..PL_SLOTS-1). */
unsigned pl_slot(const char *key, size_t n);

#endif
