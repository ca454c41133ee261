// CP11Kit: p11-kit's module loading API and its PKCS#11 header, plus the few
// constants that are cast macros Swift cannot import.
#ifndef CP11KIT_SHIM_H
#define CP11KIT_SHIM_H

#include <stdlib.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

/// `CK_UNAVAILABLE_INFORMATION` (`(unsigned long)-1L`).
static inline unsigned long CP11Kit_unavailableInformation(void) { return CK_UNAVAILABLE_INFORMATION; }
/// `CK_EFFECTIVELY_INFINITE`.
static inline unsigned long CP11Kit_effectivelyInfinite(void) { return CK_EFFECTIVELY_INFINITE; }

#endif
