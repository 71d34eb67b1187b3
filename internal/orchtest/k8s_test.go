package orchtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/steadfast-pods/steadfast/internal/pod"
	"github.com/steadfast-pods/steadfast/nodeid"
)

// The kustomizations under test, relative to the repository root.
const (
	k8sBase       = "deploy/k8s/base"
	k8sProduction = "deploy/k8s/overlays/production"
)

// Resource sizing. measuredRSS is the highest resident set (VmHWM) seen for
// a pod of either role on a 3-pod swarm after a minute at 640 values/s
// (42,928 kB; README "Multi-host"). Requests must cover it, limits must
// leave room for a full outbox and replicas held (3x).
const measuredRSS = 43 << 20

// render builds a kustomization with the kustomize library (the same code
// as `kubectl kustomize`).
func render(t testing.TB, dir string) []byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(t), dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manifest is a rendered kustomization, every object decoded strictly into
// its official Go type.
type manifest struct {
	namespaces   []*corev1.Namespace
	services     []*corev1.Service
	statefulSets []*appsv1.StatefulSet
	pdbs         []*policyv1.PodDisruptionBudget
	secrets      []*corev1.Secret
	configMaps   []*corev1.ConfigMap
}

// decodeManifest splits a multi-document YAML stream and decodes each
// document into the Go type of its apiVersion and kind with unknown and
// duplicate fields rejected. A kind the deployment has no business
// containing is an error.
func decodeManifest(y []byte) (*manifest, error) {
	m := &manifest{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(y)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			o := &corev1.Namespace{}
			m.namespaces, obj = append(m.namespaces, o), o
		case "v1 Service":
			o := &corev1.Service{}
			m.services, obj = append(m.services, o), o
		case "apps/v1 StatefulSet":
			o := &appsv1.StatefulSet{}
			m.statefulSets, obj = append(m.statefulSets, o), o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			m.pdbs, obj = append(m.pdbs, o), o
		case "v1 Secret":
			o := &corev1.Secret{}
			m.secrets, obj = append(m.secrets, o), o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			m.configMaps, obj = append(m.configMaps, o), o
		default:
			return nil, fmt.Errorf("document %d: unexpected %s %s", i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %v", i, tm.Kind, err)
		}
	}
	return m, nil
}

// checkOpts says what a rendering must have besides the common invariants.
type checkOpts struct {
	envVars   map[string]map[string]bool // per role: the variables the pod reads (--help)
	namespace string                     // every object in it ("" = none set)
	wantKey   bool                       // CLUSTER_KEY or CLUSTER_KEY_FILE from a Secret on every pod (the pods refuse to start without a key)
}

// Well-known values the checks compare with.
const (
	labelScrape = "prometheus.io/scrape"
	labelPort   = "prometheus.io/port"
	labelPath   = "prometheus.io/path"
	keySample   = "c3RlYWRmYXN0LXRlc3Qta2V5LW9ubHktMzJieXRlcyE=" // a syntactically valid key for ParseFlags
)

// roleOf returns the pod role a StatefulSet runs, from its one container's
// command.
func roleOf(s *appsv1.StatefulSet) (string, error) {
	cs := s.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		return "", fmt.Errorf("statefulset %s: want one container, have %d", s.Name, len(cs))
	}
	if len(cs[0].Command) != 1 || len(cs[0].Args) != 0 {
		return "", fmt.Errorf("statefulset %s: want command [/usr/local/bin/<role>] and no args, have %q %q", s.Name, cs[0].Command, cs[0].Args)
	}
	switch cs[0].Command[0] {
	case "/usr/local/bin/publisher":
		return "publisher", nil
	case "/usr/local/bin/subscriber":
		return "subscriber", nil
	}
	return "", fmt.Errorf("statefulset %s: command %q runs no pod binary of the image", s.Name, cs[0].Command[0])
}

// podEnv resolves a container's environment the way the kubelet would for
// pod ordinal 0 on IP 10.1.2.3 (the Secret's value replaced by a sample
// key; a key file by a local file holding it), and checks where each value
// comes from.
func podEnv(s *appsv1.StatefulSet, c *corev1.Container, vars map[string]bool, o checkOpts) (map[string]string, []error) {
	var errs []error
	env := map[string]string{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			errs = append(errs, fmt.Errorf("statefulset %s: env %s set twice", s.Name, e.Name))
		}
		if !vars[e.Name] {
			errs = append(errs, fmt.Errorf("statefulset %s: env %s is not a variable the pod reads (see --help)", s.Name, e.Name))
		}
		vf := e.ValueFrom
		switch {
		case e.Name == "NODE_ID":
			if vf == nil || vf.FieldRef == nil || vf.FieldRef.FieldPath != "metadata.name" || e.Value != "" {
				errs = append(errs, fmt.Errorf("statefulset %s: NODE_ID must come from the pod name (fieldRef metadata.name)", s.Name))
			}
			env[e.Name] = s.Name + "-0"
		case e.Name == "ADVERTISE":
			if vf == nil || vf.FieldRef == nil || vf.FieldRef.FieldPath != "status.podIP" || e.Value != "" {
				errs = append(errs, fmt.Errorf("statefulset %s: ADVERTISE must come from the pod IP (fieldRef status.podIP)", s.Name))
			}
			env[e.Name] = "10.1.2.3"
		case e.Name == "CLUSTER_KEY":
			if e.Value != "" || vf == nil || vf.SecretKeyRef == nil || vf.SecretKeyRef.Name == "" || vf.SecretKeyRef.Key == "" {
				errs = append(errs, fmt.Errorf("statefulset %s: CLUSTER_KEY inlined: it must come from a Secret (secretKeyRef)", s.Name))
			} else if vf.SecretKeyRef.Optional != nil && *vf.SecretKeyRef.Optional {
				errs = append(errs, fmt.Errorf("statefulset %s: CLUSTER_KEY's Secret is optional: a pod would start without encryption", s.Name))
			}
			env[e.Name] = keySample
		case e.Name == "CLUSTER_KEY_FILE":
			if vf != nil || e.Value == "" {
				errs = append(errs, fmt.Errorf("statefulset %s: CLUSTER_KEY_FILE must be a path where a Secret is mounted", s.Name))
			} else if err := checkKeyFileMount(s, c, e.Value); err != nil {
				errs = append(errs, err)
			}
			p, err := sampleKeyFile()
			if err != nil {
				errs = append(errs, err)
			}
			env[e.Name] = p
		case e.Name == "INSECURE":
			errs = append(errs, fmt.Errorf("statefulset %s: INSECURE set: the pods would run without authentication", s.Name))
			env[e.Name] = e.Value
		case vf != nil:
			errs = append(errs, fmt.Errorf("statefulset %s: env %s from %+v: only NODE_ID, ADVERTISE and CLUSTER_KEY are expected to come from elsewhere", s.Name, e.Name, vf))
		default:
			env[e.Name] = e.Value
		}
	}
	for _, need := range []string{"NODE_ID", "ADVERTISE", "JOIN", "DATA_DIR", "METRICS_ADDR"} {
		if _, ok := env[need]; !ok {
			errs = append(errs, fmt.Errorf("statefulset %s: env %s missing", s.Name, need))
		}
	}
	_, key := env["CLUSTER_KEY"]
	_, file := env["CLUSTER_KEY_FILE"]
	switch {
	case key && file:
		errs = append(errs, fmt.Errorf("statefulset %s: both CLUSTER_KEY and CLUSTER_KEY_FILE: the pod refuses a key given both ways", s.Name))
	case o.wantKey && !key && !file:
		errs = append(errs, fmt.Errorf("statefulset %s: no CLUSTER_KEY or CLUSTER_KEY_FILE: gossip would be unencrypted", s.Name))
	}
	return env, errs
}

// checkKeyFileMount checks that path is a file of a Secret volume the
// container mounts read-only, not optional, with a mode the pod accepts
// (nothing for other users, no group write) and that the pod's user can
// read (the kubelet gives the files to the pod's fsGroup).
func checkKeyFileMount(s *appsv1.StatefulSet, c *corev1.Container, path string) error {
	for _, vm := range c.VolumeMounts {
		rel, err := filepath.Rel(vm.MountPath, path)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		if !vm.ReadOnly {
			return fmt.Errorf("statefulset %s: the key file's volume %s is mounted writable", s.Name, vm.Name)
		}
		var sec *corev1.SecretVolumeSource
		for _, v := range s.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name {
				sec = v.Secret
			}
		}
		if sec == nil || sec.SecretName == "" {
			return fmt.Errorf("statefulset %s: CLUSTER_KEY_FILE %s is on volume %s, which is not a Secret", s.Name, path, vm.Name)
		}
		if sec.Optional != nil && *sec.Optional {
			return fmt.Errorf("statefulset %s: the key file's Secret %s is optional: a pod would start without its key", s.Name, sec.SecretName)
		}
		mode := corev1.SecretVolumeSourceDefaultMode
		if sec.DefaultMode != nil {
			mode = *sec.DefaultMode
		}
		found := len(sec.Items) == 0 // then every key of the Secret is a file
		for _, it := range sec.Items {
			if it.Path == rel {
				found = true
				if it.Mode != nil {
					mode = *it.Mode
				}
			}
		}
		if !found {
			return fmt.Errorf("statefulset %s: no item of Secret %s is mounted as %s", s.Name, sec.SecretName, path)
		}
		if mode&0o027 != 0 {
			return fmt.Errorf("statefulset %s: key file mode %04o: the pod refuses a key file other users may read or its group write (defaultMode 0440)", s.Name, mode)
		}
		psc := s.Spec.Template.Spec.SecurityContext
		if mode&0o004 == 0 && (psc == nil || psc.FSGroup == nil) && (psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 0) {
			return fmt.Errorf("statefulset %s: no fsGroup: the key file (root's, mode %04o) is unreadable for the pod's user", s.Name, mode)
		}
		return nil
	}
	return fmt.Errorf("statefulset %s: CLUSTER_KEY_FILE %s is on no volume mount of the container", s.Name, path)
}

var (
	keyFileOnce sync.Once
	keyFileDir  string
	keyFileErr  error
)

// sampleKeyFile returns a local file holding keySample as the kubelet
// mounts a Secret's key (mode 0440), made once per test binary (TestMain
// removes it).
func sampleKeyFile() (string, error) {
	keyFileOnce.Do(func() {
		if keyFileDir, keyFileErr = os.MkdirTemp("", "orchtest-key-"); keyFileErr != nil {
			return
		}
		p := filepath.Join(keyFileDir, "cluster-key")
		if keyFileErr = os.WriteFile(p, []byte(keySample), 0o600); keyFileErr == nil {
			keyFileErr = os.Chmod(p, 0o440)
		}
	})
	return filepath.Join(keyFileDir, "cluster-key"), keyFileErr
}

// portOf returns the port number of a host:port.
func portOf(hp string) (int32, error) {
	_, p, err := net.SplitHostPort(hp)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("port %q", p)
	}
	return int32(n), nil
}

// containerPort resolves a probe's or service's target port (name or
// number) to the container's port.
func containerPort(c *corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// wantPorts is what a pod listens on, from its parsed configuration.
type wantPort struct {
	port  int32
	proto corev1.Protocol
	what  string
}

// checkManifest checks every invariant of a rendered kustomization and
// returns every violation.
func checkManifest(m *manifest, o checkOpts) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if len(m.secrets) > 0 {
		add("the rendering contains Secret %s: the cluster key must be created out of band and referenced, never committed", m.secrets[0].Name)
	}
	for _, cm := range m.configMaps {
		for k, v := range cm.Data {
			if strings.Contains(strings.ToUpper(k), "KEY") || strings.Contains(v, "CLUSTER_KEY") {
				add("configmap %s holds %s: keys belong in a Secret", cm.Name, k)
			}
		}
	}
	if o.namespace != "" {
		found := false
		for _, ns := range m.namespaces {
			found = found || ns.Name == o.namespace
		}
		if !found {
			add("no Namespace %s in the rendering", o.namespace)
		}
		metas := []*metav1.ObjectMeta{}
		for _, x := range m.services {
			metas = append(metas, &x.ObjectMeta)
		}
		for _, x := range m.statefulSets {
			metas = append(metas, &x.ObjectMeta)
		}
		for _, x := range m.pdbs {
			metas = append(metas, &x.ObjectMeta)
		}
		for _, md := range metas {
			if md.Namespace != o.namespace {
				add("%s is in namespace %q, want %q", md.Name, md.Namespace, o.namespace)
			}
		}
	}

	services := map[string]*corev1.Service{}
	for _, s := range m.services {
		services[s.Name] = s
	}
	roles := map[string]*appsv1.StatefulSet{}
	type seed struct {
		sts  string
		host string
		port int32
	}
	var seeds []seed
	for _, s := range m.statefulSets {
		role, err := roleOf(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if roles[role] != nil {
			add("two StatefulSets run %s: %s and %s", role, roles[role].Name, s.Name)
		}
		roles[role] = s
		spec := &s.Spec
		tmpl := &spec.Template
		c := &tmpl.Spec.Containers[0]

		// Scheduling and identity.
		if spec.Replicas == nil || *spec.Replicas < 1 {
			add("statefulset %s: replicas unset or < 1", s.Name)
		} else if role == "subscriber" && *spec.Replicas < 2 {
			add("statefulset %s: %d subscriber: a replaced subscriber needs a live peer holding its snapshot (want >= 2)", s.Name, *spec.Replicas)
		}
		if spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			add("statefulset %s: podManagementPolicy %q, want Parallel (pods become ready only after joining each other)", s.Name, spec.PodManagementPolicy)
		}
		if sel, err := metav1.LabelSelectorAsSelector(spec.Selector); err != nil || sel.Empty() || !sel.Matches(labels.Set(tmpl.Labels)) {
			add("statefulset %s: selector %v does not select its own pods (%v)", s.Name, spec.Selector, tmpl.Labels)
		}
		replicas := int32(1)
		if spec.Replicas != nil {
			replicas = *spec.Replicas
		}
		for _, i := range []int32{0, replicas - 1, replicas, 9999} {
			if i < 0 {
				continue
			}
			if id := fmt.Sprintf("%s-%d", s.Name, i); nodeid.Validate(id) != nil {
				add("statefulset %s: pod %s has no valid node id: %v", s.Name, id, nodeid.Validate(id))
			}
		}

		// Environment, parsed by the pod's own flag parser.
		env, envErrs := podEnv(s, c, o.envVars[role], o)
		errs = append(errs, envErrs...)
		pr := pod.Subscriber
		if role == "publisher" {
			pr = pod.Publisher
		}
		cfg, err := pod.ParseFlags(pr, nil, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			add("statefulset %s: the pod rejects its environment: %v", s.Name, err)
			continue
		}

		// Ports: every address the pod listens on is a declared container
		// port of the right protocol, reachable on the pod IP, and nothing
		// else is declared.
		var want []wantPort
		for _, l := range []struct {
			addr, what string
			protos     []corev1.Protocol
		}{
			{cfg.Bind, "gossip (BIND)", []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP}},
			{cfg.DataEndpoint, "transport (DATA_ENDPOINT)", []corev1.Protocol{corev1.ProtocolUDP}},
			{cfg.MetricsAddr, "metrics (METRICS_ADDR)", []corev1.Protocol{corev1.ProtocolTCP}},
		} {
			h, _, _ := net.SplitHostPort(l.addr)
			if h != "" && h != "0.0.0.0" && h != "::" {
				add("statefulset %s: %s listens on %s, not reachable on the pod IP", s.Name, l.what, l.addr)
			}
			p, err := portOf(l.addr)
			if err != nil {
				add("statefulset %s: %s %q: %v", s.Name, l.what, l.addr, err)
				continue
			}
			for _, proto := range l.protos {
				want = append(want, wantPort{p, proto, l.what})
			}
		}
		for _, w := range want {
			if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
				return cp.ContainerPort == w.port && protoOf(cp.Protocol) == w.proto
			}) {
				add("statefulset %s: no container port %d/%s for %s", s.Name, w.port, w.proto, w.what)
			}
		}
		for _, cp := range c.Ports {
			if cp.Name == "" {
				add("statefulset %s: container port %d has no name", s.Name, cp.ContainerPort)
			}
			if !slices.ContainsFunc(want, func(w wantPort) bool { return cp.ContainerPort == w.port && protoOf(cp.Protocol) == w.proto }) {
				add("statefulset %s: container port %s %d/%s is not one the pod listens on", s.Name, cp.Name, cp.ContainerPort, protoOf(cp.Protocol))
			}
		}
		metricsPort, _ := portOf(cfg.MetricsAddr)
		// Datagrams must fit one packet on a 1500-byte network inside a
		// VXLAN overlay (1450): IP fragments are lost whole or dropped.
		if cfg.MTU+28 > 1450 {
			add("statefulset %s: MTU %d: transport datagrams of %d bytes with headers are IP-fragmented on a 1450-byte overlay", s.Name, cfg.MTU, cfg.MTU+28)
		}

		// Probes: liveness on /livez, readiness on /readyz, both on the
		// metrics port (whether they answer is TestK8sProbesOnRealPods).
		for _, pb := range []struct {
			p    *corev1.Probe
			what string
			path string
		}{{c.LivenessProbe, "liveness", "/livez"}, {c.ReadinessProbe, "readiness", "/readyz"}} {
			if pb.p == nil || pb.p.HTTPGet == nil {
				add("statefulset %s: no HTTP %s probe", s.Name, pb.what)
				continue
			}
			if pb.p.HTTPGet.Path != pb.path {
				add("statefulset %s: %s probe path %q, want %q", s.Name, pb.what, pb.p.HTTPGet.Path, pb.path)
			}
			if pb.p.HTTPGet.Scheme != "" && pb.p.HTTPGet.Scheme != corev1.URISchemeHTTP {
				add("statefulset %s: %s probe scheme %s, the pod serves plain HTTP", s.Name, pb.what, pb.p.HTTPGet.Scheme)
			}
			if cp, ok := containerPort(c, pb.p.HTTPGet.Port); !ok || cp.ContainerPort != metricsPort {
				add("statefulset %s: %s probe port %s is not the metrics port %d", s.Name, pb.what, pb.p.HTTPGet.Port.String(), metricsPort)
			}
		}
		if c.StartupProbe != nil {
			add("statefulset %s: a startup probe delays liveness for no reason: /livez answers from the start", s.Name)
		}

		// Prometheus scrape annotations.
		an := tmpl.Annotations
		if an[labelScrape] != "true" || an[labelPath] != "/metrics" || an[labelPort] != strconv.Itoa(int(metricsPort)) {
			add("statefulset %s: scrape annotations %s=%q %s=%q %s=%q, want true, /metrics, %d", s.Name,
				labelScrape, an[labelScrape], labelPath, an[labelPath], labelPort, an[labelPort], metricsPort)
		}

		// Resources, sized from the measured RSS.
		req, lim := c.Resources.Requests, c.Resources.Limits
		mreq, mlim := req.Memory(), lim.Memory()
		switch {
		case req.Cpu().IsZero():
			add("statefulset %s: no CPU request", s.Name)
		case mreq.IsZero() || mlim.IsZero():
			add("statefulset %s: memory request and limit must both be set", s.Name)
		case mreq.Value() < measuredRSS:
			add("statefulset %s: memory request %s below the measured RSS %s", s.Name, mreq, resource.NewQuantity(measuredRSS, resource.BinarySI))
		case mlim.Value() < 3*measuredRSS || mlim.Cmp(*mreq) < 0:
			add("statefulset %s: memory limit %s: want >= 3x the measured RSS and >= the request", s.Name, mlim)
		}

		// Security.
		psc := tmpl.Spec.SecurityContext
		csc := c.SecurityContext
		nonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot && psc.RunAsUser != nil && *psc.RunAsUser != 0
		if !nonRoot {
			add("statefulset %s: pod securityContext must set runAsNonRoot and a non-zero runAsUser", s.Name)
		}
		switch {
		case csc == nil:
			add("statefulset %s: container has no securityContext", s.Name)
		case csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation:
			add("statefulset %s: allowPrivilegeEscalation must be false", s.Name)
		case csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem:
			add("statefulset %s: readOnlyRootFilesystem must be true", s.Name)
		case csc.Privileged != nil && *csc.Privileged:
			add("statefulset %s: privileged", s.Name)
		case csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") || len(csc.Capabilities.Add) > 0:
			add("statefulset %s: capabilities must drop ALL and add none", s.Name)
		}
		seccomp := psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault ||
			csc != nil && csc.SeccompProfile != nil && csc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
		if !seccomp {
			add("statefulset %s: no RuntimeDefault seccomp profile", s.Name)
		}

		// The data dir: the only writable path, an emptyDir (or a claim).
		dataOK := false
		for _, vm := range c.VolumeMounts {
			if filepath.Clean(vm.MountPath) != filepath.Clean(cfg.DataDir) || vm.ReadOnly {
				continue
			}
			for _, v := range tmpl.Spec.Volumes {
				if v.Name == vm.Name && v.EmptyDir != nil {
					dataOK = true
				}
			}
			for _, pvc := range spec.VolumeClaimTemplates {
				dataOK = dataOK || pvc.Name == vm.Name
			}
		}
		if !dataOK {
			add("statefulset %s: DATA_DIR %s is not a writable emptyDir or claim mount (the root filesystem is read-only)", s.Name, cfg.DataDir)
		}

		// The governing Service: headless, publishes not-ready pods, selects
		// exactly this StatefulSet's pods and exposes its ports.
		svc := services[spec.ServiceName]
		if svc == nil {
			add("statefulset %s: serviceName %q is not a Service of the rendering", s.Name, spec.ServiceName)
		} else {
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				add("service %s: clusterIP %q, want None (headless: DNS returns every pod)", svc.Name, svc.Spec.ClusterIP)
			}
			if !svc.Spec.PublishNotReadyAddresses {
				add("service %s: publishNotReadyAddresses must be true: pods join through it before they are ready", svc.Name)
			}
			if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(tmpl.Labels)) {
				add("service %s: selector %v does not select statefulset %s's pods", svc.Name, svc.Spec.Selector, s.Name)
			}
			for _, w := range want {
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
					cp, ok := containerPort(c, sp.TargetPort)
					return ok && sp.Port == w.port && protoOf(sp.Protocol) == w.proto && cp.ContainerPort == w.port && protoOf(cp.Protocol) == w.proto
				}) {
					add("service %s: no port %d/%s targeting the pod's %s", svc.Name, w.port, w.proto, w.what)
				}
			}
		}

		// PodDisruptionBudget: maxUnavailable 1 over this StatefulSet's pods.
		var pdb *policyv1.PodDisruptionBudget
		for _, d := range m.pdbs {
			if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(tmpl.Labels)) {
				if pdb != nil {
					add("statefulset %s: two PodDisruptionBudgets select its pods", s.Name)
				}
				pdb = d
			}
		}
		if pdb == nil {
			add("statefulset %s: no PodDisruptionBudget selects its pods", s.Name)
		} else if pdb.Spec.MinAvailable != nil || pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) {
			add("poddisruptionbudget %s: want maxUnavailable 1 (and no minAvailable)", pdb.Name)
		}

		for _, sd := range cfg.Join {
			h, _, _ := net.SplitHostPort(sd)
			p, _ := portOf(sd)
			seeds = append(seeds, seed{s.Name, h, p})
		}
	}
	for _, role := range []string{"publisher", "subscriber"} {
		if roles[role] == nil {
			add("no StatefulSet runs the %s", role)
		}
	}
	// Services must not select another role's pods.
	for _, svc := range m.services {
		n := 0
		for _, s := range m.statefulSets {
			if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(s.Spec.Template.Labels)) {
				n++
			}
		}
		if n != 1 {
			add("service %s selects the pods of %d StatefulSets, want 1", svc.Name, n)
		}
	}
	// JOIN seeds: headless Services of the rendering (short or qualified
	// name) on their gossip port; together they cover every role.
	covered := map[string]bool{}
	for _, sd := range seeds {
		name, _, _ := strings.Cut(sd.host, ".")
		svc := services[name]
		if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
			add("statefulset %s: JOIN seed %s:%d is not a headless Service of the rendering", sd.sts, sd.host, sd.port)
			continue
		}
		if rest := strings.TrimPrefix(sd.host, name); rest != "" && o.namespace != "" && !strings.HasPrefix(rest, "."+o.namespace) {
			add("statefulset %s: JOIN seed %s names another namespace than %s", sd.sts, sd.host, o.namespace)
		}
		for _, s := range m.statefulSets {
			if s.Spec.ServiceName != name {
				continue
			}
			covered[name] = true
			env := map[string]string{}
			for _, e := range s.Spec.Template.Spec.Containers[0].Env {
				env[e.Name] = e.Value
			}
			bind := env["BIND"]
			if bind == "" {
				bind = pod.DefaultConfig(pod.Subscriber).Bind
			}
			if p, _ := portOf(bind); p != sd.port {
				add("statefulset %s: JOIN seed %s:%d, but %s's pods gossip on %d", sd.sts, sd.host, sd.port, s.Name, p)
			}
		}
	}
	for _, s := range m.statefulSets {
		if !covered[s.Spec.ServiceName] {
			add("no pod's JOIN names %s's Service %s: its pods are no seeds", s.Name, s.Spec.ServiceName)
		}
	}
	return errs
}

func protoOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// renderings are the kustomizations with what each must have.
func renderings(t testing.TB) map[string]checkOpts {
	vars := podEnvVars(t)
	return map[string]checkOpts{
		k8sBase:       {envVars: vars, wantKey: true},
		k8sProduction: {envVars: vars, namespace: "steadfast", wantKey: true},
	}
}

// TestK8sManifests renders the base and the production overlay, decodes
// every object strictly with the official API types and checks every
// invariant.
func TestK8sManifests(t *testing.T) {
	for dir, o := range renderings(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := decodeManifest(render(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			if len(m.statefulSets) != 2 || len(m.services) != 2 || len(m.pdbs) != 2 {
				t.Fatalf("want 2 StatefulSets, 2 Services, 2 PodDisruptionBudgets; have %d, %d, %d", len(m.statefulSets), len(m.services), len(m.pdbs))
			}
			for _, err := range checkManifest(m, o) {
				t.Error(err)
			}
		})
	}
}

var kustomizeVersionRE = regexp.MustCompile(`Kustomize Version: v(\d+)\.`)

// TestK8sKubectlKustomize renders both kustomizations with `kubectl
// kustomize` where kubectl is installed (Debian's kubernetes-client, or
// any other) and requires the same objects as the library's rendering.
func TestK8sKubectlKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("skipped: no kubectl on PATH (the manifests are rendered with the kustomize library in TestK8sManifests)")
	}
	ver, _ := exec.Command(kubectl, "version", "--client").CombinedOutput()
	if m := kustomizeVersionRE.FindSubmatch(ver); m == nil || atoi(string(m[1])) < 4 {
		t.Skipf("skipped: kubectl's kustomize is older than v4 (labels/patches with targets unsupported):\n%s", ver)
	}
	for dir := range renderings(t) {
		cmd := exec.Command(kubectl, "kustomize", dir)
		cmd.Dir = repoRoot(t)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
		}
		got, err := decodeManifest(out)
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", dir, err)
		}
		want, err := decodeManifest(render(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("kubectl kustomize %s differs from the kustomize library's rendering:\n%s", dir, out)
		}
	}
}

// TestK8sChecksCatchMistakes breaks the production rendering one way at a
// time and requires checkManifest to report each.
func TestK8sChecksCatchMistakes(t *testing.T) {
	o := renderings(t)[k8sProduction]
	y := render(t, k8sProduction)
	sts := func(m *manifest, name string) *appsv1.StatefulSet {
		for _, s := range m.statefulSets {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no statefulset %s", name)
		return nil
	}
	ctr := func(m *manifest, name string) *corev1.Container {
		return &sts(m, name).Spec.Template.Spec.Containers[0]
	}
	setEnv := func(c *corev1.Container, name string, e corev1.EnvVar) {
		for i := range c.Env {
			if c.Env[i].Name == name {
				c.Env[i] = e
				return
			}
		}
		c.Env = append(c.Env, e)
	}
	dropEnv := func(c *corev1.Container, name string) {
		c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	}
	// keyVolume: the volume CLUSTER_KEY_FILE is on.
	keyVolume := func(m *manifest, name string) *corev1.Volume {
		s := sts(m, name)
		for i, v := range s.Spec.Template.Spec.Volumes {
			if v.Secret != nil {
				return &s.Spec.Template.Spec.Volumes[i]
			}
		}
		t.Fatalf("statefulset %s: no Secret volume", name)
		return nil
	}
	svc := func(m *manifest, name string) *corev1.Service {
		for _, s := range m.services {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no service %s", name)
		return nil
	}
	f := false
	tr := true
	cases := []struct {
		name   string
		mutate func(m *manifest)
		want   string
	}{
		{"unknown env", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "SNAPSHOT_EVERY", corev1.EnvVar{Name: "SNAPSHOT_EVERY", Value: "1s"})
		}, "not a variable the pod reads"},
		{"publisher-only env on a subscriber", func(m *manifest) { setEnv(ctr(m, "subscriber"), "RATE", corev1.EnvVar{Name: "RATE", Value: "1s"}) }, "not a variable the pod reads"},
		{"bad env value", func(m *manifest) { setEnv(ctr(m, "publisher"), "RATE", corev1.EnvVar{Name: "RATE", Value: "fast"}) }, "rejects its environment"},
		{"MTU default", func(m *manifest) { dropEnv(ctr(m, "publisher"), "MTU") }, "IP-fragmented"},
		{"MTU not a multiple of 32", func(m *manifest) { setEnv(ctr(m, "subscriber"), "MTU", corev1.EnvVar{Name: "MTU", Value: "1400"}) }, "rejects its environment"},
		{"NODE_ID literal", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "NODE_ID", corev1.EnvVar{Name: "NODE_ID", Value: "subscriber-0"})
		}, "NODE_ID must come from the pod name"},
		{"NODE_ID from the uid", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "NODE_ID", corev1.EnvVar{Name: "NODE_ID", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.uid"}}})
		}, "NODE_ID must come from the pod name"},
		{"invalid node id", func(m *manifest) { sts(m, "subscriber").Name = "subscriber/x" }, "no valid node id"},
		{"ADVERTISE from host IP", func(m *manifest) {
			setEnv(ctr(m, "publisher"), "ADVERTISE", corev1.EnvVar{Name: "ADVERTISE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}})
		}, "ADVERTISE must come from the pod IP"},
		{"key inlined", func(m *manifest) {
			setEnv(ctr(m, "publisher"), "CLUSTER_KEY", corev1.EnvVar{Name: "CLUSTER_KEY", Value: keySample})
		}, "CLUSTER_KEY inlined"},
		{"key optional", func(m *manifest) { keyVolume(m, "publisher").Secret.Optional = &tr }, "optional"},
		{"key file readable by others", func(m *manifest) {
			mode := int32(0o644)
			keyVolume(m, "subscriber").Secret.DefaultMode = &mode
		}, "refuses a key file"},
		{"key file item readable by others", func(m *manifest) {
			mode := int32(0o604)
			keyVolume(m, "subscriber").Secret.Items[0].Mode = &mode
		}, "refuses a key file"},
		{"key file not mounted", func(m *manifest) {
			c := ctr(m, "publisher")
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath != "/data" })
		}, "on no volume mount"},
		{"key file mounted writable", func(m *manifest) {
			c := ctr(m, "subscriber")
			for i := range c.VolumeMounts {
				c.VolumeMounts[i].ReadOnly = false
			}
		}, "mounted writable"},
		{"key file on an emptyDir", func(m *manifest) {
			keyVolume(m, "subscriber").VolumeSource = corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
		}, "not a Secret"},
		{"key file item elsewhere", func(m *manifest) { keyVolume(m, "publisher").Secret.Items[0].Path = "key" }, "no item of Secret"},
		{"key file unreadable for the pod's user", func(m *manifest) {
			mode := int32(0o400)
			keyVolume(m, "subscriber").Secret.DefaultMode = &mode
			sts(m, "subscriber").Spec.Template.Spec.SecurityContext.FSGroup = nil
		}, "unreadable"},
		{"key both ways", func(m *manifest) {
			setEnv(ctr(m, "publisher"), "CLUSTER_KEY", corev1.EnvVar{Name: "CLUSTER_KEY", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "steadfast-cluster-key"}, Key: "cluster-key"}}})
		}, "both CLUSTER_KEY and CLUSTER_KEY_FILE"},
		{"insecure", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "INSECURE", corev1.EnvVar{Name: "INSECURE", Value: "true"})
		}, "without authentication"},
		{"key missing", func(m *manifest) { dropEnv(ctr(m, "subscriber"), "CLUSTER_KEY_FILE") }, "no CLUSTER_KEY"},
		{"Secret committed", func(m *manifest) {
			m.secrets = append(m.secrets, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "steadfast-cluster-key"}})
		}, "contains Secret"},
		{"metrics port mismatch", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "METRICS_ADDR", corev1.EnvVar{Name: "METRICS_ADDR", Value: "0.0.0.0:9191"})
		}, "no container port 9191/TCP"},
		{"metrics on localhost", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "METRICS_ADDR", corev1.EnvVar{Name: "METRICS_ADDR", Value: "127.0.0.1:9090"})
		}, "not reachable on the pod IP"},
		{"gossip UDP missing", func(m *manifest) {
			c := ctr(m, "publisher")
			c.Ports = slices.DeleteFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "gossip-udp" })
		}, "no container port 7946/UDP"},
		{"data port TCP", func(m *manifest) {
			for i := range ctr(m, "publisher").Ports {
				if p := &ctr(m, "publisher").Ports[i]; p.Name == "data" {
					p.Protocol = corev1.ProtocolTCP
				}
			}
		}, "no container port 40123/UDP"},
		{"stray port", func(m *manifest) {
			c := ctr(m, "publisher")
			c.Ports = append(c.Ports, corev1.ContainerPort{Name: "debug", ContainerPort: 6060})
		}, "not one the pod listens on"},
		{"liveness on readyz", func(m *manifest) { ctr(m, "subscriber").LivenessProbe.HTTPGet.Path = "/readyz" }, "liveness probe path"},
		{"readiness missing", func(m *manifest) { ctr(m, "subscriber").ReadinessProbe = nil }, "no HTTP readiness probe"},
		{"probe on gossip port", func(m *manifest) {
			ctr(m, "publisher").ReadinessProbe.HTTPGet.Port = intstr.FromString("gossip-tcp")
		}, "not the metrics port"},
		{"not parallel", func(m *manifest) { sts(m, "subscriber").Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement }, "Parallel"},
		{"one subscriber", func(m *manifest) { one := int32(1); sts(m, "subscriber").Spec.Replicas = &one }, "want >= 2"},
		{"service not headless", func(m *manifest) { svc(m, "subscriber").Spec.ClusterIP = "" }, "want None"},
		{"not-ready pods hidden", func(m *manifest) { svc(m, "publisher").Spec.PublishNotReadyAddresses = false }, "publishNotReadyAddresses"},
		{"service selects both roles", func(m *manifest) { delete(svc(m, "publisher").Spec.Selector, "app.kubernetes.io/component") }, "selects the pods of 2"},
		{"service port missing", func(m *manifest) { svc(m, "subscriber").Spec.Ports = svc(m, "subscriber").Spec.Ports[:1] }, "no port 7946/UDP"},
		{"wrong serviceName", func(m *manifest) { sts(m, "publisher").Spec.ServiceName = "steadfast" }, "not a Service"},
		{"JOIN to a non-service", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "JOIN", corev1.EnvVar{Name: "JOIN", Value: "publisher:7946,seeds:7946"})
		}, "not a headless Service"},
		{"JOIN wrong port", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "JOIN", corev1.EnvVar{Name: "JOIN", Value: "publisher:7947,subscriber:7946"})
		}, "gossip on 7946"},
		{"JOIN misses subscribers", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "JOIN", corev1.EnvVar{Name: "JOIN", Value: "publisher:7946"})
			setEnv(ctr(m, "publisher"), "JOIN", corev1.EnvVar{Name: "JOIN", Value: "publisher:7946"})
		}, "no pod's JOIN names subscriber"},
		{"PDB minAvailable", func(m *manifest) {
			two := intstr.FromInt32(2)
			m.pdbs[0].Spec.MaxUnavailable, m.pdbs[0].Spec.MinAvailable = nil, &two
		}, "maxUnavailable 1"},
		{"PDB missing", func(m *manifest) { m.pdbs = m.pdbs[1:] }, "no PodDisruptionBudget"},
		{"root", func(m *manifest) {
			zero := int64(0)
			sts(m, "subscriber").Spec.Template.Spec.SecurityContext.RunAsUser = &zero
		}, "non-zero runAsUser"},
		{"writable root", func(m *manifest) { ctr(m, "publisher").SecurityContext.ReadOnlyRootFilesystem = &f }, "readOnlyRootFilesystem"},
		{"escalation", func(m *manifest) { ctr(m, "publisher").SecurityContext.AllowPrivilegeEscalation = &tr }, "allowPrivilegeEscalation"},
		{"capability added", func(m *manifest) {
			ctr(m, "subscriber").SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		}, "drop ALL"},
		{"no seccomp", func(m *manifest) { sts(m, "subscriber").Spec.Template.Spec.SecurityContext.SeccompProfile = nil }, "seccomp"},
		{"data dir not mounted", func(m *manifest) {
			setEnv(ctr(m, "subscriber"), "DATA_DIR", corev1.EnvVar{Name: "DATA_DIR", Value: "/var/lib/steadfast"})
		}, "not a writable emptyDir"},
		{"memory request under RSS", func(m *manifest) {
			ctr(m, "subscriber").Resources.Requests[corev1.ResourceMemory] = resource.MustParse("16Mi")
		}, "below the measured RSS"},
		{"no memory limit", func(m *manifest) { delete(ctr(m, "publisher").Resources.Limits, corev1.ResourceMemory) }, "request and limit"},
		{"scrape port", func(m *manifest) { sts(m, "publisher").Spec.Template.Annotations[labelPort] = "8080" }, "scrape annotations"},
		{"other namespace", func(m *manifest) { m.pdbs[1].Namespace = "default" }, "want \"steadfast\""},
		{"command", func(m *manifest) { ctr(m, "subscriber").Command = []string{"/usr/local/bin/runner"} }, "runs no pod binary"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeManifest(y)
			if err != nil {
				t.Fatal(err)
			}
			tc.mutate(m)
			errs := checkManifest(m, o)
			for _, err := range errs {
				if strings.Contains(err.Error(), tc.want) {
					return
				}
			}
			t.Errorf("mutation %q not caught (want an error containing %q); got %v", tc.name, tc.want, errs)
		})
	}
}

// TestK8sStrictDecoding proves the decoder rejects what kubectl apply
// would: an unknown field, a misspelled one, a duplicate key and an
// unexpected kind.
func TestK8sStrictDecoding(t *testing.T) {
	y := string(render(t, k8sBase))
	for name, bad := range map[string]string{
		"unknown field":   strings.Replace(y, "podManagementPolicy: Parallel", "podManagementPolicy: Parallel\n  maxSurge: 1", 1),
		"misspelled":      strings.Replace(y, "publishNotReadyAddresses: true", "publishNotReadyAdresses: true", 1),
		"duplicate key":   strings.Replace(y, "serviceName: subscriber", "serviceName: subscriber\n  serviceName: publisher", 1),
		"unexpected kind": y + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n",
	} {
		if bad == y {
			t.Fatalf("%s: the mutation did not apply", name)
		}
		if _, err := decodeManifest([]byte(bad)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
