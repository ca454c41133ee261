// CLDAP: OpenLDAP's libldap (Debian libldap-dev) and what Swift cannot import from it: the option
// values that are pointers (LDAP_OPT_ON/OFF), casts in macros (LDAP_SCOPE_SUBTREE), the sockbuf
// control that bounds a message's size, LDAPMod's union, and the SASL interaction callback of a
// GSSAPI bind (Cyrus SASL's sasl_interact_t, Debian libsasl2-dev; its header only: nothing links libsasl2).
//
// libldap is loaded when first called (loader.c), not linked: with it come liblber, libsasl2 and GnuTLS
// with eight more libraries, whose loading and start-up cost every `signet` run about 2 ms (a fifth of a
// message's signature) while only the directory commands use them.
#ifndef CLDAP_SHIM_H
#define CLDAP_SHIM_H

#include <ldap.h>
#include <lber.h>
#include <stdlib.h>
#include <string.h>
#include <sasl/sasl.h>

/// `LDAP_OPT_OFF` (a null pointer: no referrals are chased, no restart).
static inline void *CLDAP_optionOff(void) { return LDAP_OPT_OFF; }
/// `LDAP_OPT_ON` for a boolean option. The macro names liblber's `ber_pvt_opt_on`, which is not linked (libldap is
/// loaded on first use); libldap sets a boolean option for any pointer other than `LDAP_OPT_OFF` (NULL), so a
/// pointer of our own does the same.
static inline void *CLDAP_optionOn(void) { static char on = 1; return &on; }
/// `LDAP_SCOPE_SUBTREE`.
static inline int CLDAP_scopeSubtree(void) { return LDAP_SCOPE_SUBTREE; }
/// `LDAP_SCOPE_BASE`.
static inline int CLDAP_scopeBase(void) { return LDAP_SCOPE_BASE; }

/// Refuses any message from the server larger than `bytes` (libldap reads each whole message into
/// memory before handing it over, so without this a hostile directory decides how much is read).
/// Returns 1 when set.
static inline int CLDAP_setMaxIncoming(LDAP *ld, ber_len_t bytes) {
    Sockbuf *sb = NULL;
    if (ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) != LDAP_OPT_SUCCESS || sb == NULL) return 0;
    return ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_MAX_INCOMING, &bytes);
}

/// One modification of binary values of `attribute` on `dn` (`operation`: LDAP_MOD_ADD or LDAP_MOD_DELETE),
/// synchronous. `values` is `count` berval pointers (not NULL-terminated: this adds the terminator).
static inline int CLDAP_modifyBinary(LDAP *ld, const char *dn, int operation, const char *attribute,
                                     struct berval **values, int count) {
    struct berval **terminated = calloc((size_t)count + 1, sizeof(struct berval *));
    if (terminated == NULL) return LDAP_NO_MEMORY;
    for (int i = 0; i < count; i++) terminated[i] = values[i];
    LDAPMod mod = { .mod_op = operation | LDAP_MOD_BVALUES, .mod_type = (char *)attribute };
    mod.mod_vals.modv_bvals = terminated;
    LDAPMod *mods[2] = { &mod, NULL };
    int rc = ldap_modify_ext_s(ld, dn, mods, NULL, NULL);
    free(terminated);
    return rc;
}

/// Answers Cyrus SASL's questions during a GSSAPI bind: the GSSAPI mechanism asks at most for an authorization
/// identity, and Signet names none (the directory uses the one the Kerberos principal maps to). No secret passes here:
/// the credentials are the user's Kerberos ticket, read by the GSSAPI library from the ticket cache.
static inline int CLDAP_saslNoAnswers(LDAP *ld, unsigned flags, void *defaults, void *prompts) {
    (void)ld; (void)flags; (void)defaults;
    for (sasl_interact_t *prompt = prompts; prompt != NULL && prompt->id != SASL_CB_LIST_END; prompt++) {
        prompt->result = "";
        prompt->len = 0;
    }
    return LDAP_SUCCESS;
}

/// A SASL GSSAPI bind with the Kerberos ticket in the user's cache (KRB5CCNAME, or the default cache), synchronous.
static inline int CLDAP_bindGSSAPI(LDAP *ld) {
    return ldap_sasl_interactive_bind_s(ld, NULL, "GSSAPI", NULL, NULL, LDAP_SASL_QUIET, CLDAP_saslNoAnswers, NULL);
}

/// The authorization identity the directory gives this connection (RFC 4532 "Who am I?"): "dn:..." or "u:...",
/// malloc'ed (free it), or NULL with the result code in `rc`.
static inline char *CLDAP_whoAmI(LDAP *ld, int *rc) {
    struct berval *identity = NULL;
    *rc = ldap_whoami_s(ld, &identity, NULL, NULL);
    if (*rc != LDAP_SUCCESS) { if (identity) ber_bvfree(identity); return NULL; }
    char *copy = calloc(1, (identity ? identity->bv_len : 0) + 1);
    if (copy != NULL && identity != NULL && identity->bv_len > 0) memcpy(copy, identity->bv_val, identity->bv_len);
    if (identity) ber_bvfree(identity);
    if (copy == NULL) *rc = LDAP_NO_MEMORY;
    return copy;
}

#endif
