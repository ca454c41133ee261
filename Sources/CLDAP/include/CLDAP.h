// CLDAP: OpenLDAP's libldap (Debian libldap-dev) and what Swift cannot import from it: the option
// values that are pointers (LDAP_OPT_ON/OFF), casts in macros (LDAP_SCOPE_SUBTREE), the sockbuf
// control that bounds a message's size, and LDAPMod's union.
//
// libldap is loaded when first called (loader.c), not linked: with it come liblber, libsasl2 and GnuTLS
// with eight more libraries, whose loading and start-up cost every `signet` run about 2 ms (a fifth of a
// message's signature) while only the directory commands use them.
#ifndef CLDAP_SHIM_H
#define CLDAP_SHIM_H

#include <ldap.h>
#include <lber.h>
#include <stdlib.h>

/// `LDAP_OPT_OFF` (a null pointer: no referrals are chased, no restart).
static inline void *CLDAP_optionOff(void) { return LDAP_OPT_OFF; }
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

#endif
