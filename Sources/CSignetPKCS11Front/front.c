// CSignetPKCS11Front is a header (include/CSignetPKCS11Front.h); SwiftPM needs one source file in a C target.
#include "CSignetPKCS11Front.h"
