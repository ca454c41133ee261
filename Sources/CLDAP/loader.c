// The libldap functions Signet calls, each forwarding to OpenLDAP's libldap loaded on the first call
// (see CLDAP.h for why it is not linked). Built with hidden visibility: these definitions serve
// Signet's own calls and never take the place of libldap's for libldap itself.
//
// A function added to Signet's LDAP code needs its line here (the link fails until it has one).
#include "CLDAP.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

// Debian 12's OpenLDAP 2.5, then 2.6's name.
static const char *const libraries[] = {"libldap-2.5.so.0", "libldap.so.2"};

static struct {
    int (*initialize)(LDAP **, const char *);
    int (*set_option)(LDAP *, int, const void *);
    int (*get_option)(LDAP *, int, void *);
    char *(*err2string)(int);
    void (*memfree)(void *);
    void (*value_free_len)(struct berval **);
    int (*url_parse)(const char *, LDAPURLDesc **);
    void (*free_urldesc)(LDAPURLDesc *);
    int (*unbind_ext_s)(LDAP *, LDAPControl **, LDAPControl **);
    int (*start_tls_s)(LDAP *, LDAPControl **, LDAPControl **);
    int (*search_ext_s)(LDAP *, const char *, int, const char *, char **, int, LDAPControl **, LDAPControl **,
                        struct timeval *, int, LDAPMessage **);
    int (*sasl_bind_s)(LDAP *, const char *, const char *, struct berval *, LDAPControl **, LDAPControl **,
                       struct berval **);
    LDAPMessage *(*first_entry)(LDAP *, LDAPMessage *);
    LDAPMessage *(*next_entry)(LDAP *, LDAPMessage *);
    char *(*first_attribute)(LDAP *, LDAPMessage *, BerElement **);
    char *(*next_attribute)(LDAP *, LDAPMessage *, BerElement *);
    int (*msgfree)(LDAPMessage *);
    int (*modify_ext_s)(LDAP *, const char *, LDAPMod **, LDAPControl **, LDAPControl **);
    struct berval **(*get_values_len)(LDAP *, LDAPMessage *, const char *);
    char *(*get_dn)(LDAP *, LDAPMessage *);
    int (*sockbuf_ctrl)(Sockbuf *, int, void *);
    void (*ber_free)(BerElement *, int);
    int (*sasl_interactive_bind_s)(LDAP *, const char *, const char *, LDAPControl **, LDAPControl **, unsigned,
                                   LDAP_SASL_INTERACT_PROC *, void *);
    int (*whoami_s)(LDAP *, struct berval **, LDAPControl **, LDAPControl **);
    void (*bvfree)(struct berval *);
} api;
static int loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    void *library = NULL;
    for (size_t i = 0; i < sizeof libraries / sizeof libraries[0] && library == NULL; i++)
        library = dlopen(libraries[i], RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) return;
#define FIND(field, name) *(void **)&api.field = dlsym(library, name); if (api.field == NULL) return;
    FIND(initialize, "ldap_initialize")
    FIND(set_option, "ldap_set_option")
    FIND(get_option, "ldap_get_option")
    FIND(err2string, "ldap_err2string")
    FIND(memfree, "ldap_memfree")
    FIND(value_free_len, "ldap_value_free_len")
    FIND(url_parse, "ldap_url_parse")
    FIND(free_urldesc, "ldap_free_urldesc")
    FIND(unbind_ext_s, "ldap_unbind_ext_s")
    FIND(start_tls_s, "ldap_start_tls_s")
    FIND(search_ext_s, "ldap_search_ext_s")
    FIND(sasl_bind_s, "ldap_sasl_bind_s")
    FIND(first_entry, "ldap_first_entry")
    FIND(next_entry, "ldap_next_entry")
    FIND(first_attribute, "ldap_first_attribute")
    FIND(next_attribute, "ldap_next_attribute")
    FIND(msgfree, "ldap_msgfree")
    FIND(modify_ext_s, "ldap_modify_ext_s")
    FIND(get_values_len, "ldap_get_values_len")
    FIND(get_dn, "ldap_get_dn")
    FIND(sockbuf_ctrl, "ber_sockbuf_ctrl")
    FIND(ber_free, "ber_free")
    FIND(sasl_interactive_bind_s, "ldap_sasl_interactive_bind_s")
    FIND(whoami_s, "ldap_whoami_s")
    FIND(bvfree, "ber_bvfree")
#undef FIND
    loaded = 1;
}

/// Whether libldap is there (loads it on the first call).
static int ready(void) {
    pthread_once(&once, load);
    return loaded;
}

// Without libldap every call fails with LDAP_NOT_SUPPORTED, which ldap_err2string below explains.
int ldap_initialize(LDAP **ld, const char *url) { return ready() ? api.initialize(ld, url) : LDAP_NOT_SUPPORTED; }
int ldap_set_option(LDAP *ld, int option, const void *value) { return ready() ? api.set_option(ld, option, value) : LDAP_OPT_ERROR; }
int ldap_get_option(LDAP *ld, int option, void *value) { return ready() ? api.get_option(ld, option, value) : LDAP_OPT_ERROR; }
char *ldap_err2string(int error) {
    if (ready()) return api.err2string(error);
    return (char *)"OpenLDAP's libldap could not be loaded (libldap-2.5.so.0; on Debian: apt-get install libldap-2.5-0)";
}
void ldap_memfree(void *pointer) { if (ready()) api.memfree(pointer); }
void ldap_value_free_len(struct berval **values) { if (ready()) api.value_free_len(values); }
int ldap_url_parse(const char *url, LDAPURLDesc **description) {
    return ready() ? api.url_parse(url, description) : LDAP_URL_ERR_MEM;
}
void ldap_free_urldesc(LDAPURLDesc *description) { if (ready()) api.free_urldesc(description); }
int ldap_unbind_ext_s(LDAP *ld, LDAPControl **server, LDAPControl **client) {
    return ready() ? api.unbind_ext_s(ld, server, client) : LDAP_NOT_SUPPORTED;
}
int ldap_start_tls_s(LDAP *ld, LDAPControl **server, LDAPControl **client) {
    return ready() ? api.start_tls_s(ld, server, client) : LDAP_NOT_SUPPORTED;
}
int ldap_search_ext_s(LDAP *ld, const char *base, int scope, const char *filter, char **attributes, int attributesOnly,
                      LDAPControl **server, LDAPControl **client, struct timeval *timeout, int sizeLimit, LDAPMessage **result) {
    return ready() ? api.search_ext_s(ld, base, scope, filter, attributes, attributesOnly, server, client, timeout, sizeLimit, result)
                   : LDAP_NOT_SUPPORTED;
}
int ldap_sasl_bind_s(LDAP *ld, const char *dn, const char *mechanism, struct berval *credentials, LDAPControl **server,
                     LDAPControl **client, struct berval **serverCredentials) {
    return ready() ? api.sasl_bind_s(ld, dn, mechanism, credentials, server, client, serverCredentials) : LDAP_NOT_SUPPORTED;
}
LDAPMessage *ldap_first_entry(LDAP *ld, LDAPMessage *chain) { return ready() ? api.first_entry(ld, chain) : NULL; }
LDAPMessage *ldap_next_entry(LDAP *ld, LDAPMessage *entry) { return ready() ? api.next_entry(ld, entry) : NULL; }
char *ldap_first_attribute(LDAP *ld, LDAPMessage *entry, BerElement **ber) {
    return ready() ? api.first_attribute(ld, entry, ber) : NULL;
}
char *ldap_next_attribute(LDAP *ld, LDAPMessage *entry, BerElement *ber) {
    return ready() ? api.next_attribute(ld, entry, ber) : NULL;
}
int ldap_msgfree(LDAPMessage *message) { return ready() ? api.msgfree(message) : LDAP_NOT_SUPPORTED; }
int ldap_modify_ext_s(LDAP *ld, const char *dn, LDAPMod **modifications, LDAPControl **server, LDAPControl **client) {
    return ready() ? api.modify_ext_s(ld, dn, modifications, server, client) : LDAP_NOT_SUPPORTED;
}
struct berval **ldap_get_values_len(LDAP *ld, LDAPMessage *entry, const char *attribute) {
    return ready() ? api.get_values_len(ld, entry, attribute) : NULL;
}
char *ldap_get_dn(LDAP *ld, LDAPMessage *entry) { return ready() ? api.get_dn(ld, entry) : NULL; }
int ber_sockbuf_ctrl(Sockbuf *sockbuf, int option, void *argument) {
    return ready() ? api.sockbuf_ctrl(sockbuf, option, argument) : 0;
}
void ber_free(BerElement *ber, int freeBuffer) { if (ready()) api.ber_free(ber, freeBuffer); }
int ldap_sasl_interactive_bind_s(LDAP *ld, const char *dn, const char *mechanisms, LDAPControl **server,
                                 LDAPControl **client, unsigned flags, LDAP_SASL_INTERACT_PROC *interact, void *defaults) {
    return ready() ? api.sasl_interactive_bind_s(ld, dn, mechanisms, server, client, flags, interact, defaults)
                   : LDAP_NOT_SUPPORTED;
}
int ldap_whoami_s(LDAP *ld, struct berval **identity, LDAPControl **server, LDAPControl **client) {
    return ready() ? api.whoami_s(ld, identity, server, client) : LDAP_NOT_SUPPORTED;
}
void ber_bvfree(struct berval *value) { if (ready()) api.bvfree(value); }
