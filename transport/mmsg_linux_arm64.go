package transport

const (
	sysRecvmmsg = 243
	sysSendmmsg = 269
)
