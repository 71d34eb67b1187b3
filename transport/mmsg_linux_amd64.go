package transport

const (
	sysRecvmmsg = 299
	sysSendmmsg = 307
)
