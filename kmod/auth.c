// SPDX-License-Identifier: GPL-2.0
/*
 * bdsnap: the service password.
 *
 * The module never holds the password in clear. It holds one salted hash,
 *
 *	pbkdf2-sha256$<iterations>$<salt hex>$<derived key hex>
 *
 * (iterations 1..10000000 in decimal without leading zeros, a 16..64 byte
 * salt and a 32 byte derived key, both as lowercase hex), given at load time
 * through the passwd_hash parameter (not shown in sysfs) or installed once
 * through BDSNAP_IOC_SET_PASSWORD and then replaced only with the old
 * password. A check recomputes PBKDF2-HMAC-SHA256 with the stored salt and
 * iteration count and compares in constant time.
 *
 * Checks are serialized. Each failure pushes the earliest time of the next
 * check further out (100 ms per consecutive failure, at most 2 s) and the
 * failing caller sleeps until then; a signal ends the sleep of the failing
 * caller but not the delay, since the next check waits for what is left.
 */
#define pr_fmt(fmt) "bdsnap: " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include <linux/ctype.h>
#include <linux/mutex.h>
#include <linux/atomic.h>
#include <linux/jiffies.h>
#include <linux/delay.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/cred.h>
#include <linux/uidgid.h>
#include <crypto/hash.h>
#include <crypto/algapi.h>
#include <crypto/sha2.h>

#include "bdsnap.h"

#define BDSNAP_HASH_PREFIX	"pbkdf2-sha256$"
#define BDSNAP_SALT_MIN		16
#define BDSNAP_SALT_MAX		64
#define BDSNAP_DK_LEN		SHA256_DIGEST_SIZE
#define BDSNAP_ITER_MAX		10000000U

#define BDSNAP_AUTH_STEP_MS	100
#define BDSNAP_AUTH_MAX_MS	2000

struct bdsnap_pwhash {
	u32 iterations;
	u32 salt_len;
	u8 salt[BDSNAP_SALT_MAX];
	u8 dk[BDSNAP_DK_LEN];
};

static char *passwd_hash;
module_param(passwd_hash, charp, 0);
MODULE_PARM_DESC(passwd_hash,
		 "pbkdf2-sha256$<iterations>$<salt hex>$<derived key hex> (not shown in sysfs)");

static DEFINE_MUTEX(bdsnap_auth_lock);
/* All of these are guarded by bdsnap_auth_lock; hash_set is also read bare. */
static struct bdsnap_pwhash bdsnap_hash;
static bool bdsnap_hash_set;
static unsigned int bdsnap_consecutive;
static unsigned long bdsnap_next_check;	/* jiffies; valid if consecutive */
static atomic64_t bdsnap_failures = ATOMIC64_INIT(0);

/*
 * PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2). The kernels we build for have
 * no pbkdf2 template, so it is built here on the "hmac(sha256)" shash.
 * May sleep; returns 0, -ENOMEM/-ENOENT from the crypto API, or -EINTR if
 * the caller is being killed during a long computation.
 */
int bdsnap_pbkdf2_hmac_sha256(const u8 *pw, size_t pw_len,
			      const u8 *salt, size_t salt_len,
			      u32 iterations, u8 *dk, size_t dk_len)
{
	u8 u[SHA256_DIGEST_SIZE], t[SHA256_DIGEST_SIZE];
	struct crypto_shash *tfm;
	size_t done = 0, n;
	u32 block = 1, i;
	__be32 block_be;
	int ret;

	if (!iterations || !dk_len)
		return -EINVAL;

	tfm = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(tfm))
		return PTR_ERR(tfm);

	ret = crypto_shash_setkey(tfm, pw, pw_len);
	if (ret)
		goto out_free;

	{
		SHASH_DESC_ON_STACK(desc, tfm);

		desc->tfm = tfm;
		while (!ret && done < dk_len) {
			/* U1 = PRF(P, S || INT(block)) */
			block_be = cpu_to_be32(block++);
			ret = crypto_shash_init(desc);
			if (!ret)
				ret = crypto_shash_update(desc, salt, salt_len);
			if (!ret)
				ret = crypto_shash_finup(desc, (const u8 *)&block_be,
							 sizeof(block_be), u);
			if (ret)
				break;
			memcpy(t, u, sizeof(t));

			/* Uj = PRF(P, Uj-1); T = U1 ^ ... ^ Uc */
			for (i = 1; i < iterations; i++) {
				ret = crypto_shash_digest(desc, u, sizeof(u), u);
				if (ret)
					break;
				crypto_xor(t, u, sizeof(t));
				if (!(i & 1023)) {
					cond_resched();
					if (fatal_signal_pending(current)) {
						ret = -EINTR;
						break;
					}
				}
			}
			if (ret)
				break;

			n = min_t(size_t, dk_len - done, sizeof(t));
			memcpy(dk + done, t, n);
			done += n;
		}
		shash_desc_zero(desc);
	}

out_free:
	crypto_free_shash(tfm);
	memzero_explicit(u, sizeof(u));
	memzero_explicit(t, sizeof(t));
	if (ret)
		memzero_explicit(dk, dk_len);
	return ret;
}

/*
 * Known-answer test, run at every load: RFC 7914 section 11 (c=1) and
 * PBKDF2-HMAC-SHA256("password", "salt", 4096), both 64 bytes so the block
 * counter is exercised; checked with python3 hashlib. RFC 7914's c=80000
 * vector would cost seconds per load under emulation.
 */
static int __init bdsnap_pbkdf2_selftest(void)
{
	static const struct {
		const char *p, *s;
		u32 c;
		u8 dk[64];
	} kat[] __initconst = {
		{ "passwd", "salt", 1, {
			0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f,
			0xec, 0x16, 0x91, 0xc2, 0x25, 0x44, 0xb6, 0x05,
			0xf9, 0x41, 0x85, 0x21, 0x6d, 0xde, 0x04, 0x65,
			0xe6, 0x8b, 0x9d, 0x57, 0xc2, 0x0d, 0xac, 0xbc,
			0x49, 0xca, 0x9c, 0xcc, 0xf1, 0x79, 0xb6, 0x45,
			0x99, 0x16, 0x64, 0xb3, 0x9d, 0x77, 0xef, 0x31,
			0x7c, 0x71, 0xb8, 0x45, 0xb1, 0xe3, 0x0b, 0xd5,
			0x09, 0x11, 0x20, 0x41, 0xd3, 0xa1, 0x97, 0x83 } },
		{ "password", "salt", 4096, {
			0xc5, 0xe4, 0x78, 0xd5, 0x92, 0x88, 0xc8, 0x41,
			0xaa, 0x53, 0x0d, 0xb6, 0x84, 0x5c, 0x4c, 0x8d,
			0x96, 0x28, 0x93, 0xa0, 0x01, 0xce, 0x4e, 0x11,
			0xa4, 0x96, 0x38, 0x73, 0xaa, 0x98, 0x13, 0x4a,
			0xf7, 0xad, 0x98, 0xc1, 0xb4, 0x58, 0xce, 0x3f,
			0xd7, 0x4c, 0xa3, 0x5b, 0xeb, 0xa3, 0xcd, 0xa7,
			0xb8, 0xd1, 0x03, 0x8d, 0x6a, 0x87, 0x07, 0x1b,
			0x91, 0x8f, 0x83, 0x74, 0x05, 0xf3, 0xfe, 0x77 } },
	};
	u8 out[64];
	int i, ret;

	for (i = 0; i < ARRAY_SIZE(kat); i++) {
		ret = bdsnap_pbkdf2_hmac_sha256((const u8 *)kat[i].p, strlen(kat[i].p),
						(const u8 *)kat[i].s, strlen(kat[i].s),
						kat[i].c, out, sizeof(out));
		if (ret) {
			pr_err("PBKDF2 self-test %d: error %d\n", i, ret);
			return ret;
		}
		if (memcmp(out, kat[i].dk, sizeof(out))) {
			pr_err("PBKDF2 self-test %d: wrong result\n", i);
			return -EINVAL;
		}
	}
	return 0;
}

/* The value of a digit already checked to be 0-9 or a-f. */
static int bdsnap_hexval(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* Lowercase hex only: the hash string has exactly one spelling. */
static int bdsnap_unhex(u8 *dst, const char *src, size_t bytes)
{
	size_t i;
	int hi, lo;

	for (i = 0; i < bytes; i++) {
		if (!isdigit(src[2 * i]) && !(src[2 * i] >= 'a' && src[2 * i] <= 'f'))
			return -EINVAL;
		if (!isdigit(src[2 * i + 1]) &&
		    !(src[2 * i + 1] >= 'a' && src[2 * i + 1] <= 'f'))
			return -EINVAL;
		hi = bdsnap_hexval(src[2 * i]);
		lo = bdsnap_hexval(src[2 * i + 1]);
		dst[i] = (hi << 4) | lo;
	}
	return 0;
}

/* Parse and validate a hash string strictly; -EINVAL if it is malformed. */
static int bdsnap_hash_parse(const char *s, struct bdsnap_pwhash *h)
{
	const size_t plen = sizeof(BDSNAP_HASH_PREFIX) - 1;
	const char *p, *salt, *dk;
	size_t salt_hex, ndigits = 0;
	u64 iter = 0;

	memset(h, 0, sizeof(*h));
	if (strnlen(s, BDSNAP_HASH_MAX) >= BDSNAP_HASH_MAX)
		return -EINVAL;
	if (strncmp(s, BDSNAP_HASH_PREFIX, plen))
		return -EINVAL;

	p = s + plen;
	if (*p == '0')
		return -EINVAL;
	while (isdigit(*p)) {
		if (++ndigits > 8)
			return -EINVAL;
		iter = iter * 10 + (*p++ - '0');
	}
	if (!ndigits || *p != '$' || iter < 1 || iter > BDSNAP_ITER_MAX)
		return -EINVAL;

	salt = p + 1;
	p = strchr(salt, '$');
	if (!p)
		return -EINVAL;
	salt_hex = p - salt;
	if (salt_hex % 2 || salt_hex < 2 * BDSNAP_SALT_MIN ||
	    salt_hex > 2 * BDSNAP_SALT_MAX)
		return -EINVAL;

	dk = p + 1;
	if (strlen(dk) != 2 * BDSNAP_DK_LEN)
		return -EINVAL;

	h->iterations = iter;
	h->salt_len = salt_hex / 2;
	if (bdsnap_unhex(h->salt, salt, h->salt_len) ||
	    bdsnap_unhex(h->dk, dk, BDSNAP_DK_LEN)) {
		memzero_explicit(h, sizeof(*h));
		return -EINVAL;
	}
	return 0;
}

/* Sleep until the rate limit allows the next check. Lock held. */
static int bdsnap_auth_wait_locked(void)
{
	unsigned long now = jiffies;

	if (!bdsnap_consecutive || !time_before(now, bdsnap_next_check))
		return 0;
	if (msleep_interruptible(jiffies_to_msecs(bdsnap_next_check - now)))
		return -ERESTARTSYS;
	return 0;
}

static void bdsnap_auth_failed_locked(void)
{
	unsigned int ms;

	atomic64_inc(&bdsnap_failures);
	if (bdsnap_consecutive < BDSNAP_AUTH_MAX_MS / BDSNAP_AUTH_STEP_MS)
		bdsnap_consecutive++;
	ms = min_t(unsigned int, bdsnap_consecutive * BDSNAP_AUTH_STEP_MS,
		   BDSNAP_AUTH_MAX_MS);
	bdsnap_next_check = jiffies + msecs_to_jiffies(ms);

	pr_warn_ratelimited("authentication failed (uid %u, pid %d, %s)\n",
			    from_kuid(&init_user_ns, current_uid()),
			    task_tgid_nr(current), current->comm);

	/* The failing caller waits out the delay too; a signal cuts it short. */
	msleep_interruptible(ms);
}

/* 0 if passwd matches the stored hash, -EPERM if not. Lock held, hash set. */
static int bdsnap_auth_verify_locked(const char *passwd)
{
	u8 dk[BDSNAP_DK_LEN];
	int ret;

	ret = bdsnap_auth_wait_locked();
	if (ret)
		return ret;

	ret = bdsnap_pbkdf2_hmac_sha256((const u8 *)passwd, strlen(passwd),
					bdsnap_hash.salt, bdsnap_hash.salt_len,
					bdsnap_hash.iterations, dk, sizeof(dk));
	if (ret) {
		/* An internal failure is no evidence of a wrong password. */
		if (ret != -EINTR)
			pr_err_ratelimited("password check could not run: error %d\n", ret);
		return ret;
	}

	if (crypto_memneq(dk, bdsnap_hash.dk, sizeof(dk))) {
		memzero_explicit(dk, sizeof(dk));
		bdsnap_auth_failed_locked();
		return -EPERM;
	}
	memzero_explicit(dk, sizeof(dk));
	bdsnap_consecutive = 0;
	return 0;
}

int bdsnap_auth_check(const char *passwd)
{
	int ret;

	if (mutex_lock_interruptible(&bdsnap_auth_lock))
		return -ERESTARTSYS;
	if (!bdsnap_hash_set) {
		atomic64_inc(&bdsnap_failures);
		pr_notice_once("no password hash is set: load with passwd_hash= or install one with BDSNAP_IOC_SET_PASSWORD\n");
		ret = -EPERM;
	} else {
		ret = bdsnap_auth_verify_locked(passwd);
	}
	mutex_unlock(&bdsnap_auth_lock);
	return ret;
}

int bdsnap_auth_set(const char *old_passwd, const char *new_hash)
{
	struct bdsnap_pwhash h;
	u32 iterations;
	bool replaced;
	int ret;

	ret = bdsnap_hash_parse(new_hash, &h);
	if (ret)
		return ret;
	iterations = h.iterations;

	if (mutex_lock_interruptible(&bdsnap_auth_lock)) {
		memzero_explicit(&h, sizeof(h));
		return -ERESTARTSYS;
	}
	replaced = bdsnap_hash_set;
	if (replaced)
		ret = old_passwd ? bdsnap_auth_verify_locked(old_passwd) : -EPERM;
	if (!ret) {
		bdsnap_hash = h;
		WRITE_ONCE(bdsnap_hash_set, true);
		bdsnap_consecutive = 0;
	}
	mutex_unlock(&bdsnap_auth_lock);
	memzero_explicit(&h, sizeof(h));

	if (!ret)
		pr_info("password hash %s (%u iterations) by uid %u\n",
			replaced ? "replaced" : "installed", iterations,
			from_kuid(&init_user_ns, current_uid()));
	return ret;
}

bool bdsnap_auth_is_set(void)
{
	return READ_ONCE(bdsnap_hash_set);
}

u64 bdsnap_auth_failures(void)
{
	return atomic64_read(&bdsnap_failures);
}

int __init bdsnap_auth_init(void)
{
	int ret;

	ret = bdsnap_pbkdf2_selftest();
	if (ret)
		return ret;

	if (passwd_hash && *passwd_hash) {
		ret = bdsnap_hash_parse(passwd_hash, &bdsnap_hash);
		/* Keep only the parsed copy; the parameter string is wiped. */
		memzero_explicit(passwd_hash, strlen(passwd_hash));
		if (ret) {
			pr_err("passwd_hash is malformed: expected pbkdf2-sha256$<iterations 1..%u>$<%d..%d byte salt, lowercase hex>$<%d byte key, lowercase hex>\n",
			       BDSNAP_ITER_MAX, BDSNAP_SALT_MIN, BDSNAP_SALT_MAX,
			       BDSNAP_DK_LEN);
			return ret;
		}
		bdsnap_hash_set = true;
	}
	return 0;
}

void bdsnap_auth_exit(void)
{
	memzero_explicit(&bdsnap_hash, sizeof(bdsnap_hash));
	bdsnap_hash_set = false;
}
