/** RabbitMQ quorum module (spec 001 module 5; docs/rabbitmq.md): settings, render functions, component. */
export * from "./settings";
export * from "./render";
export * from "./component";
