// Forwarding header: <PCSC/pcsclite.h> includes <wintypes.h> without the PCSC/ prefix.
#include <PCSC/wintypes.h>
