/** The kubeadm Kubernetes cluster module (spec 002 module 9): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
