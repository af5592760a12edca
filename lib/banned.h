/*
 * banned: C library calls Parley does not use, made compile errors. Each
 * writes without a bound, keeps hidden state, or cannot report failure:
 * use snprintf, a checked strtoll, gmtime_r and localtime_r instead. Every
 * source file includes this header last, after the system headers it uses,
 * so their own declarations are left alone.
 */
#ifndef PL_BANNED_H
#define PL_BANNED_H

#define PL_BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) PL_BANNED(strcpy)
#undef strcat
#define strcat(x, y) PL_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) PL_BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) PL_BANNED(strncat)
#undef sprintf
#define sprintf(...) PL_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) PL_BANNED(vsprintf)
#undef gets
#define gets(x) PL_BANNED(gets)
#undef strtok
#define strtok(x, y) PL_BANNED(strtok)
#undef atoi
#define atoi(x) PL_BANNED(atoi)
#undef gmtime
#define gmtime(t) PL_BANNED(gmtime)
#undef localtime
#define localtime(t) PL_BANNED(localtime)

#endif
