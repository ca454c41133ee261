// Everything is static inline in include/CSignetAgent.h; SwiftPM needs one source file in a C target.
#include "CSignetAgent.h"
