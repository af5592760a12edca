/*
 * clock: the times Parley reads and the one way it writes them.
 *
 * Wall-clock milliseconds for what is stored or shown (presence deadlines,
 * last_seen, token expiry), monotonic milliseconds for intervals and
 * timeouts, and RFC 3339 UTC text, the contract's time format (doc/protocol.md).
 */
#ifndef PL_CLOCK_H
#define PL_CLOCK_H

#define PL_CLOCK_RFC3339_BYTES 64

/* Milliseconds since the Unix epoch. */
long long pl_clock_now_ms(void);

/* Milliseconds on the monotonic clock (for intervals only). */
long long pl_clock_mono_ms(void);

/* The monotonic clock in microseconds, for timing. */
long long pl_clock_mono_us(void);

/*
 * Writes epoch milliseconds ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out
 * (PL_CLOCK_RFC3339_BYTES) and returns out.
 */
char *pl_clock_rfc3339_ms(long long ms, char out[PL_CLOCK_RFC3339_BYTES]);

/*
 * Reads RFC 3339 UTC text as PostgreSQL writes it ("...T..:..:..[.frac]Z")
 * into epoch microseconds. Returns 0 for text of another shape.
 */
long long pl_clock_parse_rfc3339_us(const char *text);

#endif
