// CPCSCLite is a C target (not a system-library one) so that its include/
// folder, with the two forwarding headers, is on the importers' search path.
#include "CPCSCLite.h"
